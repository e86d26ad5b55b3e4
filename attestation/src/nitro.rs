//! The real Nitro Security Module, through `/dev/nsm` and the AWS nsm-api driver.

use aws_nitro_enclaves_nsm_api::api::{ErrorCode, Request, Response};
use aws_nitro_enclaves_nsm_api::driver;
use serde_bytes::ByteBuf;

use crate::TrustedRoot;
use crate::nsm::{AttestationRequest, Nsm, NsmError, PcrDescription};

/// The NSM device of a running Nitro Enclave.
#[derive(Debug)]
pub struct NitroNsm {
    fd: i32,
}

impl NitroNsm {
    /// Opens `/dev/nsm`; fails outside a Nitro Enclave.
    pub fn open() -> Result<Self, NsmError> {
        let fd = driver::nsm_init();
        if fd < 0 {
            return Err(NsmError::Device(
                "cannot open /dev/nsm (not running inside a Nitro Enclave?)".into(),
            ));
        }
        Ok(Self { fd })
    }

    fn call(&self, request: Request) -> Result<Response, NsmError> {
        match driver::nsm_process_request(self.fd, request) {
            Response::Error(ErrorCode::InputTooLarge) => {
                Err(NsmError::Device("input too large".into()))
            }
            Response::Error(code) => Err(NsmError::Device(format!("{code:?}"))),
            other => Ok(other),
        }
    }
}

impl Drop for NitroNsm {
    fn drop(&mut self) {
        driver::nsm_exit(self.fd);
    }
}

impl Nsm for NitroNsm {
    fn attestation(&self, request: &AttestationRequest) -> Result<Vec<u8>, NsmError> {
        request.check_limits()?;
        let req = Request::Attestation {
            user_data: request.user_data.clone().map(ByteBuf::from),
            nonce: request.nonce.clone().map(ByteBuf::from),
            public_key: request.public_key.clone().map(ByteBuf::from),
        };
        match self.call(req)? {
            Response::Attestation { document } => Ok(document),
            _ => Err(NsmError::UnexpectedResponse("Attestation")),
        }
    }

    fn fill_random(&self, out: &mut [u8]) -> Result<(), NsmError> {
        // Each GetRandom returns a device-chosen amount (256 bytes today); loop until full.
        let mut filled = 0;
        while filled < out.len() {
            match self.call(Request::GetRandom)? {
                Response::GetRandom { random } if !random.is_empty() => {
                    let n = random.len().min(out.len() - filled);
                    out[filled..filled + n].copy_from_slice(&random[..n]);
                    filled += n;
                }
                _ => return Err(NsmError::UnexpectedResponse("GetRandom")),
            }
        }
        Ok(())
    }

    fn describe_pcr(&self, index: u16) -> Result<PcrDescription, NsmError> {
        match driver::nsm_process_request(self.fd, Request::DescribePCR { index }) {
            Response::DescribePCR { lock, data } => Ok(PcrDescription { locked: lock, data }),
            Response::Error(ErrorCode::InvalidIndex) => Err(NsmError::InvalidPcrIndex(index)),
            Response::Error(code) => Err(NsmError::Device(format!("{code:?}"))),
            _ => Err(NsmError::UnexpectedResponse("DescribePCR")),
        }
    }

    fn trusted_root(&self) -> TrustedRoot {
        TrustedRoot::aws_nitro_g1()
    }
}
