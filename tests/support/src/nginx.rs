//! A throwaway nginx (Debian's) on loopback: the load balancer in front of several gateway
//! replicas, configured from the templates in `deploy/nginx/` exactly as an operator would
//! (their `${SEALGATE_*}` variables filled in by [`render`]).
//!
//! nginx runs unprivileged in the foreground with everything it writes (pid, logs, temporary
//! files) in its own temporary directory, one worker, and is stopped on drop (SIGTERM, which
//! takes its workers with it, then the kill of any service).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::service::Service;

const START_TIMEOUT: Duration = Duration::from_secs(10);
const HINT: &str = "install it with `cargo xtask setup` (apt-get install -y nginx libnginx-mod-stream)";

/// Debian's dynamic stream module (`libnginx-mod-stream`), needed by TCP pass-through.
const STREAM_MODULE: &str = "/usr/lib/nginx/modules/ngx_stream_module.so";

/// What a test puts into nginx.conf for the port nginx is to listen on.
#[derive(Debug, Clone, Default)]
pub struct NginxConfig {
    /// Top-level directives, such as a `stream { }` block.
    pub top_level: String,
    /// Directives inside `http { }`, such as `upstream` and `server` blocks.
    pub http: String,
}

/// A running nginx; stopped on drop, workers included.
#[derive(Debug)]
pub struct Nginx {
    service: Service,
    dir: tempfile::TempDir,
}

impl Nginx {
    /// Starts nginx with `config(port)` on a free port of 127.0.0.1 and waits until the port
    /// accepts connections; panics with nginx's error log if it cannot start.
    pub fn start(config: impl Fn(u16, &Path) -> NginxConfig) -> Nginx {
        let dir =
            tempfile::Builder::new().prefix("sealgate-nginx-").tempdir().expect("a temporary directory for nginx");
        let service = Service::start("nginx", HINT, START_TIMEOUT, |port| {
            let conf = main_config(dir.path(), &config(port, dir.path()));
            let path = dir.path().join("nginx.conf");
            fs::write(&path, conf).expect("writing nginx.conf");
            let mut command = Command::new("nginx");
            command.arg("-p").arg(dir.path()).arg("-c").arg(&path).arg("-e").arg(dir.path().join("error.log"));
            command.args(["-g", "daemon off;"]);
            command
        });
        Nginx { service, dir }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.service.port
    }

    /// `https://127.0.0.1:PORT`: the URL clients use.
    pub fn url(&self) -> String {
        format!("https://{}", self.service.address())
    }

    /// The path an access log should be written to, for `${SEALGATE_ACCESS_LOG}`.
    pub fn access_log_path(dir: &Path) -> PathBuf {
        dir.join("access.log")
    }

    /// What nginx has logged per request or connection so far.
    pub fn access_log(&self) -> String {
        fs::read_to_string(Self::access_log_path(self.dir.path())).unwrap_or_default()
    }

    /// Reloads nginx as an operator does after changing its configuration (`nginx -s reload`,
    /// a SIGHUP to the master): new workers start on the configuration, the old ones finish
    /// what they hold and exit. Waits until the error log shows the reload was taken, and
    /// panics with the log if it is not within a few seconds.
    pub fn reload(&self) {
        let reloads = |log: &str| log.matches("reconfiguring").count();
        let before = reloads(&self.error_log());
        let pid = self.service.pid().expect("nginx runs");
        let status = Command::new("kill").args(["-HUP", &pid.to_string()]).status().expect("running kill");
        assert!(status.success(), "kill -HUP {pid} failed");
        let started = std::time::Instant::now();
        while reloads(&self.error_log()) == before {
            assert!(started.elapsed() < START_TIMEOUT, "nginx did not reload:\n{}", self.error_log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// nginx's error log so far.
    pub fn error_log(&self) -> String {
        fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    /// Stops nginx the way its master stops its workers (SIGTERM, a fast shutdown), and
    /// waits until the master has exited: the SIGKILL of [`Service`]'s drop alone would
    /// leave the workers running, orphaned, after the test.
    fn drop(&mut self) {
        let Some(pid) = self.service.pid() else { return };
        let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
        let started = std::time::Instant::now();
        // Until it is gone or a zombie (the service's drop reaps it).
        let exited = || {
            fs::read_to_string(format!("/proc/{pid}/stat"))
                .map_or(true, |stat| stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')))
        };
        while !exited() && started.elapsed() < START_TIMEOUT {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// nginx.conf around `config`: unprivileged, foreground, one worker, every file in `dir`.
fn main_config(dir: &Path, config: &NginxConfig) -> String {
    let dir = dir.display();
    let stream_module = if config.top_level.contains("stream {") && Path::new(STREAM_MODULE).exists() {
        format!("load_module {STREAM_MODULE};\n")
    } else {
        String::new()
    };
    format!(
        "{stream_module}worker_processes 1;\npid {dir}/nginx.pid;\nerror_log {dir}/error.log notice;\n\
         events {{ worker_connections 1024; }}\n{top}\nhttp {{\n\
         access_log off;\n\
         client_body_temp_path {dir}/client_body;\nproxy_temp_path {dir}/proxy;\n\
         fastcgi_temp_path {dir}/fastcgi;\nuwsgi_temp_path {dir}/uwsgi;\nscgi_temp_path {dir}/scgi;\n\
         {http}\n}}\n",
        top = config.top_level,
        http = config.http,
    )
}

/// The template `deploy/nginx/NAME` of this repository.
pub fn deploy_template(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/nginx").join(name);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Fills in `${NAME}` for each `(NAME, value)`; panics if a `${SEALGATE_...}` is left, so a
/// template that grows a variable fails its test instead of starting a half-configured
/// nginx.
pub fn render(template: &str, variables: &[(&str, &str)]) -> String {
    let mut text = String::with_capacity(template.len());
    for line in template.lines() {
        // Comments may name variables (the envsubst example): only directives are filled in,
        // and a value of several lines must not spill out of a comment.
        if line.trim_start().starts_with('#') {
            text.push_str(line);
        } else {
            let filled = variables
                .iter()
                .fold(line.to_owned(), |line, (name, value)| line.replace(&format!("${{{name}}}"), value));
            assert!(!filled.contains("${SEALGATE_"), "a variable is left unfilled in the template: {filled}");
            text.push_str(&filled);
        }
        text.push('\n');
    }
    text
}
