//! The inner request's `Date` (RFC 9458 section 6.5): every request carries the client's
//! time, so that the gateway can refuse a captured request replayed later. A gateway that
//! finds the time too far from its own answers `400` with the problem type
//! [`problem_type::DATE`] and its own `Date`; [`clock_correction`] reads that answer, and the
//! client sends that request once more, freshly sealed and dated by the gateway's time, which
//! it uses for nothing else (RFC 9458 section 6.5.2: one retry, no other request).
//!
//! HTTP-dates here are IMF-fixdate (RFC 9110 section 5.6.7), the one form senders must use;
//! times are whole seconds since the UNIX epoch, from the caller (this crate has no clock).

use alloc::string::String;
use alloc::vec::Vec;

use sealgate_protocol::{bhttp, media_type, problem_type};

use crate::json;
use crate::session::essence;

const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// `unix` seconds as an IMF-fixdate, such as `Tue, 01 Dec 2026 18:33:20 GMT`.
pub fn http_date(unix: u64) -> String {
    let days = unix / 86_400;
    let secs = unix % 86_400;
    let (year, month, day) = civil_from_days(days);
    let weekday = DAYS.get((days % 7) as usize).copied().unwrap_or("Thu");
    let month = MONTHS.get(month as usize - 1).copied().unwrap_or("Jan");
    // Written by hand, not with `format!`: the browser package stays smaller.
    let mut out = String::with_capacity(29);
    out.push_str(weekday);
    out.push_str(", ");
    push_digits(&mut out, day, 2);
    out.push(' ');
    out.push_str(month);
    out.push(' ');
    push_digits(&mut out, year, 4);
    out.push(' ');
    push_digits(&mut out, secs / 3600, 2);
    out.push(':');
    push_digits(&mut out, secs % 3600 / 60, 2);
    out.push(':');
    push_digits(&mut out, secs % 60, 2);
    out.push_str(" GMT");
    out
}

/// The last `width` decimal digits of `value`, zero-padded.
fn push_digits(out: &mut String, value: u64, width: u32) {
    for place in (0..width).rev() {
        let digit = (value / 10u64.pow(place)) % 10;
        out.push(char::from(b'0' + digit as u8));
    }
}

/// ASCII digits as a number; `None` for anything else.
fn number(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |n, &b| b.is_ascii_digit().then(|| n * 10 + u64::from(b - b'0')))
}

/// Reads an IMF-fixdate as UNIX seconds; `None` for anything else (or before 1970).
pub fn parse_http_date(text: &str) -> Option<u64> {
    // Fixed width, read by position: `Sun, 06 Nov 1994 08:49:37 GMT`.
    let b = text.trim().as_bytes();
    if b.len() != 29 || b.get(3..5)? != b", " || b.get(25..)? != b" GMT" {
        return None;
    }
    let separators = [(7, b' '), (11, b' '), (16, b' '), (19, b':'), (22, b':')];
    if separators.iter().any(|&(at, c)| b.get(at) != Some(&c)) {
        return None;
    }
    let field = |from: usize, to: usize| number(b.get(from..to)?);
    let (day, year, h, m, s) = (field(5, 7)?, field(12, 16)?, field(17, 19)?, field(20, 22)?, field(23, 25)?);
    let month = MONTHS.iter().position(|name| name.as_bytes() == b.get(8..11).unwrap_or_default())? as u64 + 1;
    if year < 1970 || h > 23 || m > 59 || s > 60 || day == 0 || day > days_in(year, month) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    if DAYS.get((days % 7) as usize).map(|d| d.as_bytes()) != b.get(..3) {
        return None;
    }
    Some(days * 86_400 + h * 3600 + m * 60 + s.min(59))
}

/// Sets the `Date` field of `request` to `now` (UNIX seconds), replacing any it had.
pub fn set_date(request: &mut bhttp::Request, now: u64) {
    request.headers = dated_fields(&request.headers, now);
}

/// `headers` without any `Date` field, and `now`'s as the last one: [`set_date`]'s fields,
/// for a request encoded with them in place of its own.
pub(crate) fn dated_fields(headers: &[bhttp::Field], now: u64) -> Vec<bhttp::Field> {
    let mut dated: Vec<bhttp::Field> =
        headers.iter().filter(|field| !field.name.eq_ignore_ascii_case("date")).cloned().collect();
    dated.push(bhttp::Field::new("date", http_date(now)));
    dated
}

/// An upper bound on what the `Date` field adds to an encoded request (name, value, and
/// their length prefixes).
pub(crate) const DATE_FIELD_LEN: usize = 4 + 29 + 2;

/// When `response` is the gateway's refusal of the request's `Date` (`400`,
/// `application/problem+json` of type [`problem_type::DATE`], with a `Date` field), the
/// gateway's time, UNIX seconds: send that request once more, freshly sealed and dated by it
/// (once, and for no other request: RFC 9458 section 6.5.2). `None` for any other answer.
pub fn clock_correction(response: &bhttp::Response) -> Option<u64> {
    if response.status != 400 {
        return None;
    }
    let field = |name: &str| {
        response
            .headers
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
            .and_then(|f| core::str::from_utf8(&f.value).ok())
    };
    if !essence(field("content-type")?).eq_ignore_ascii_case(media_type::PROBLEM_JSON) {
        return None;
    }
    match json::string_members(&response.body, ["type"])? {
        [Some(kind)] if kind == problem_type::DATE => parse_http_date(field("date")?),
        _ => None,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date `days` after 1970-01-01: (year, month 1-12, day 1-31).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + u64::from(month <= 2), month, day)
}

fn days_in(year: u64, month: u64) -> u64 {
    match month {
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use alloc::format;
    use alloc::vec;

    use super::*;

    #[test]
    fn dates_are_written_and_read_as_imf_fixdate() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT", "RFC 9110's example");
        assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784_111_777));
        // Every day over a few centuries, and every second of one day, both ways.
        for unix in (0..400 * 366 * 86_400u64).step_by(86_400 - 7).chain(1_796_150_000..1_796_150_000 + 86_400) {
            assert_eq!(parse_http_date(&http_date(unix)), Some(unix), "{}", http_date(unix));
        }
    }

    #[test]
    fn anything_but_an_imf_fixdate_is_not_read() {
        for bad in [
            "",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "Mon, 06 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 6 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 31 Nov 1994 08:49:37 GMT",
            "Thu, 01 Jan 1969 00:00:00 GMT",
            "Sun, 06 Nov 1994 08:49:37 GMT x",
            "Sun, 06 Nov +994 08:49:37 GMT",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn set_date_replaces_any_date_the_request_had() {
        let mut request = bhttp::Request::new("GET", "https", "gw.example", "/v2/models");
        request.headers.push(bhttp::Field::new("Date", "Thu, 01 Jan 1970 00:00:00 GMT"));
        set_date(&mut request, 784_111_777);
        let dates: vec::Vec<_> = request.headers.iter().filter(|f| f.name.eq_ignore_ascii_case("date")).collect();
        assert_eq!(dates.len(), 1);
        assert_eq!(dates[0].value, b"Sun, 06 Nov 1994 08:49:37 GMT");
    }

    fn refusal(status: u16, content_type: &str, kind: &str, date: Option<&str>) -> bhttp::Response {
        let mut headers = vec![bhttp::Field::new("content-type", content_type)];
        if let Some(date) = date {
            headers.push(bhttp::Field::new("date", date));
        }
        let body = format!(r#"{{"type":"{kind}","title":"Date not acceptable"}}"#).into_bytes();
        bhttp::Response::new(status, headers, body)
    }

    #[test]
    fn only_the_gateways_date_refusal_gives_a_date_for_the_retry() {
        let date = "Sun, 06 Nov 1994 08:49:37 GMT";
        assert_eq!(
            clock_correction(&refusal(400, media_type::PROBLEM_JSON, problem_type::DATE, Some(date))),
            Some(784_111_777)
        );
        for (response, why) in [
            (refusal(401, media_type::PROBLEM_JSON, problem_type::DATE, Some(date)), "another status"),
            (refusal(400, "application/json", problem_type::DATE, Some(date)), "not a problem"),
            (refusal(400, media_type::PROBLEM_JSON, "about:blank", Some(date)), "another problem"),
            (refusal(400, media_type::PROBLEM_JSON, problem_type::DATE, None), "no Date"),
            (refusal(400, media_type::PROBLEM_JSON, problem_type::DATE, Some("yesterday")), "a bad Date"),
        ] {
            assert_eq!(clock_correction(&response), None, "{why}");
        }
    }
}
