//! Fuzz target `decapsulate`: an encapsulated request as a gateway receives it (RFC 9458
//! section 4.3), [`GatewayKeys::decapsulate`] and [`GatewayKeys::decapsulate_in_place`], on
//! both HPKE backends, with an X25519 and an X-Wing key; and an encapsulated response as a
//! client receives it (section 4.4), [`ClientResponse::decapsulate`] and
//! [`ClientResponse::decapsulate_in_place`], for a fixed request.
//!
//! Asserted: both backends and both entry points reach the same verdict and the same
//! plaintext. A request that decrypts is answered ([`ServerResponse::encapsulate`]), so the
//! response path runs on its output too.

use alloc::format;
use alloc::vec::Vec;

use super::{FixedRng, Seed, XWING_KEY_ID, aead_name};
use crate::{
    Backend, ClientRequest, ClientResponse, GatewayKeys, KeyConfig, Result, ServerResponse, SymmetricSuite, bhttp,
    rand_core,
};

/// The RNG seed of the fixed client request whose responses the target opens.
const CLIENT_SEED: u64 = 7;

/// The `decapsulate` target: one gateway per backend, and the fixed client's configuration.
#[derive(Debug)]
pub struct Target {
    gateways: Vec<GatewayKeys>,
    client_config: KeyConfig,
}

impl Target {
    /// Derives the fixed keys on every backend.
    pub fn new() -> Result<Self> {
        let super::Gateways { gateways, client_config } = super::Gateways::new()?;
        Ok(Self { gateways, client_config })
    }

    /// Opens `data` as a request on every gateway and as a response to the fixed request;
    /// true when either decrypted.
    pub fn run(&self, data: &[u8]) -> bool {
        let mut opened: Option<Result<Vec<u8>>> = None;
        for (i, gateway) in self.gateways.iter().enumerate() {
            let copied = gateway.decapsulate(data).map(|(plain, responder)| (plain.to_vec(), responder));
            let plaintext = copied.as_ref().map(|(plain, _)| plain.clone()).map_err(Clone::clone);
            // The in-place entry point shares everything but the buffer handling with the
            // other, so one backend checks it: an X-Wing decapsulation is most of a run.
            if i == 0 {
                let mut buffer = data.to_vec();
                let in_place = gateway
                    .decapsulate_in_place(&mut buffer)
                    .map(|(range, _)| buffer.get(range).unwrap_or_default().to_vec());
                assert_eq!(
                    plaintext.as_ref().map_err(drop),
                    in_place.as_ref().map_err(drop),
                    "decapsulate and decapsulate_in_place agree"
                );
            }
            // Every backend reaches the same verdict, and on success the same plaintext.
            match &opened {
                None => opened = Some(plaintext),
                Some(first) => {
                    assert_eq!(first.as_ref().map_err(drop), plaintext.as_ref().map_err(drop), "the backends agree")
                }
            }
            if let Ok((request, responder)) = copied {
                let _ = bhttp::Request::decode(&request);
                answer(responder, data);
            }
        }
        let request_ok = matches!(opened, Some(Ok(_)));

        let response_ok = match self.client() {
            Some((copied, in_place)) => {
                let plain = copied.decapsulate(data);
                let mut buffer = data.to_vec();
                let range = in_place.decapsulate_in_place(&mut buffer);
                let placed = range.map(|range| buffer.get(range).unwrap_or_default().to_vec());
                assert_eq!(plain.as_ref().map_err(drop), placed.as_ref().map_err(drop), "response entry points agree");
                if let Ok(plain) = &plain {
                    let _ = bhttp::Response::decode(plain);
                }
                plain.is_ok()
            }
            None => false,
        };
        request_ok || response_ok
    }

    /// The fixed client request's response state, twice (it is single use): the request is
    /// sealed with [`FixedRng`], so every run expects the same response key.
    fn client(&self) -> Option<(ClientResponse, ClientResponse)> {
        let one = || {
            let mut rng = rand_core::UnwrapErr(FixedRng::new(CLIENT_SEED));
            ClientRequest::new(&self.client_config, SymmetricSuite::ALL[0])
                .and_then(|r| r.encapsulate(b"", &mut rng))
                .ok()
                .map(|(_, response)| response)
        };
        Some((one()?, one()?))
    }

    /// The gateway's state for answering the fixed client request.
    fn fixed_responder(&self, gateway: &GatewayKeys) -> Option<ServerResponse> {
        let mut rng = rand_core::UnwrapErr(FixedRng::new(CLIENT_SEED));
        let (sealed, _) = ClientRequest::new(&self.client_config, SymmetricSuite::ALL[0])
            .and_then(|r| r.encapsulate(b"", &mut rng))
            .ok()?;
        gateway.decapsulate(&sealed).ok().map(|(_, responder)| responder)
    }

    /// Valid requests (each KEM and AEAD, on each backend, bodies of several sizes) and valid
    /// responses to the fixed client request.
    pub fn seeds(&self) -> Vec<Seed> {
        let mut seeds = Vec::new();
        let Some(gateway) = self.gateways.first() else { return seeds };
        let mut rng = rand_core::UnwrapErr(FixedRng::new(1));
        for config in gateway.configs() {
            let kem = if config.key_id() == XWING_KEY_ID { "xwing" } else { "x25519" };
            for (i, &suite) in SymmetricSuite::ALL.iter().enumerate() {
                for &backend in Backend::ALL {
                    let request = inner_request(i * 100);
                    let sealed = ClientRequest::new(&config, suite)
                        .map(|r| r.with_backend(backend))
                        .and_then(|r| r.encapsulate(&request.encode(), &mut rng));
                    if let Ok((sealed, _)) = sealed {
                        let name = format!("request-{kem}-{}-{}", aead_name(suite), backend.name());
                        seeds.push((name, sealed));
                    }
                }
            }
        }
        // Responses to the fixed client request, as the gateway answers it.
        for (name, response) in [
            ("response-200-json", bhttp::Response::new(200, alloc::vec![], b"{\"outputs\":[]}".to_vec())),
            ("response-400", bhttp::Response::new(400, alloc::vec![], b"bad".to_vec())),
        ] {
            let sealed = self.fixed_responder(gateway).and_then(|responder| {
                responder.encapsulate(&response.encode(), &mut rand_core::UnwrapErr(FixedRng::new(3))).ok()
            });
            if let Some(sealed) = sealed {
                seeds.push((name.into(), sealed));
            }
        }
        seeds
    }
}

/// Answers a request that decrypted, as the gateway does.
fn answer(responder: ServerResponse, data: &[u8]) {
    let response =
        bhttp::Response::new(200, alloc::vec![], data.get(..data.len().min(64)).unwrap_or_default().to_vec());
    let _ = responder.encapsulate(&response.encode(), &mut rand_core::UnwrapErr(FixedRng::new(data.len() as u64)));
}

/// A KServe request as the SDK sends it, with `extra` more bytes of body.
fn inner_request(extra: usize) -> bhttp::Request {
    let mut request = bhttp::Request::new("POST", "https", "gateway.example", "/v2/models/credit-risk/infer");
    request.headers.push(bhttp::Field::new("content-type", "application/json"));
    request.headers.push(bhttp::Field::new("date", "Thu, 03 Dec 2026 08:00:00 GMT"));
    let mut body =
        b"{\"inputs\":[{\"name\":\"input\",\"shape\":[1,2],\"datatype\":\"FP32\",\"data\":[0.5,1.5]}]}".to_vec();
    body.resize(body.len() + extra, b' ');
    request.body = body;
    request
}
