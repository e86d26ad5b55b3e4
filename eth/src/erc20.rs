//! ERC-20 calldata decoding with alloy's ABI decoder in strict mode.

use alloy_primitives::Address;
use alloy_sol_types::abi::AbiDecoderConfig;
use alloy_sol_types::{SolCall, SolInterface};
use strongroom_policy::Erc20Call;

use crate::DecodeError;

mod abi {
    #![allow(missing_docs)]
    alloy_sol_types::sol! {
        interface IErc20 {
            function transfer(address to, uint256 amount) external returns (bool);
            function transferFrom(address from, address to, uint256 amount) external returns (bool);
            function approve(address spender, uint256 amount) external returns (bool);
        }
    }
}

use abi::IErc20::{IErc20Calls, approveCall, transferCall, transferFromCall};

/// The ERC-20 selectors and the argument words each call takes.
const CALLS: [([u8; 4], usize); 3] = [
    (transferCall::SELECTOR, 2),
    (transferFromCall::SELECTOR, 3),
    (approveCall::SELECTOR, 2),
];

/// Decodes `data` sent to `token` as an ERC-20 `transfer`, `transferFrom` or `approve`:
/// `Ok(None)` when its selector is none of theirs.
///
/// Calldata with one of these selectors is decoded as the ERC-20 call, as a Solidity token
/// reads it, whatever follows the arguments (Solidity ignores trailing bytes; the intent's
/// `data_len` still shows them). Arguments that are not canonical — cut short, or an
/// address word with bits above its 20 bytes — are refused: never "other calldata" that
/// would escape the token rules while a token contract reads an amount and a recipient.
pub(crate) fn decode(token: Address, data: &[u8]) -> Result<Option<Erc20Call>, DecodeError> {
    let Some(words) = data
        .get(..4)
        .and_then(|s| CALLS.iter().find(|(selector, _)| selector[..] == *s))
        .map(|(_, words)| *words)
    else {
        return Ok(None);
    };
    let invalid = |reason: String| DecodeError::InvalidField {
        field: "data".to_owned(),
        reason,
    };
    let len = 4 + 32 * words;
    let arguments = data.get(..len).ok_or_else(|| {
        invalid(format!(
            "ERC-20 calldata of {} bytes; its selector takes {len}",
            data.len()
        ))
    })?;
    let config = AbiDecoderConfig::new().strict(true);
    let call = IErc20Calls::abi_decode_with_config(arguments, config)
        .map_err(|e| invalid(format!("ERC-20 arguments not canonically encoded: {e}")))?;
    Ok(Some(match call {
        IErc20Calls::transfer(c) => Erc20Call::Transfer {
            token,
            to: c.to,
            amount: c.amount,
        },
        IErc20Calls::transferFrom(c) => Erc20Call::TransferFrom {
            token,
            from: c.from,
            to: c.to,
            amount: c.amount,
        },
        IErc20Calls::approve(c) => Erc20Call::Approve {
            token,
            spender: c.spender,
            amount: c.amount,
        },
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use alloy_primitives::{U256, address, hex};

    const TOKEN: Address = address!("0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48");
    const TO: Address = address!("0x1111111111111111111111111111111111111111");
    const FROM: Address = address!("0x2222222222222222222222222222222222222222");

    fn word_addr(a: Address) -> String {
        format!("{:0>64}", hex::encode(a))
    }

    fn word(n: u64) -> String {
        format!("{n:064x}")
    }

    fn calldata(parts: &[&str]) -> Vec<u8> {
        hex::decode(parts.concat()).unwrap()
    }

    #[test]
    fn transfer_transfer_from_and_approve_decode() {
        let data = calldata(&["a9059cbb", &word_addr(TO), &word(1000)]);
        assert_eq!(
            decode(TOKEN, &data).unwrap(),
            Some(Erc20Call::Transfer {
                token: TOKEN,
                to: TO,
                amount: U256::from(1000)
            })
        );
        let data = calldata(&["23b872dd", &word_addr(FROM), &word_addr(TO), &word(7)]);
        assert_eq!(
            decode(TOKEN, &data).unwrap(),
            Some(Erc20Call::TransferFrom {
                token: TOKEN,
                from: FROM,
                to: TO,
                amount: U256::from(7)
            })
        );
        let data = calldata(&["095ea7b3", &word_addr(TO), &"f".repeat(64)]);
        assert_eq!(
            decode(TOKEN, &data).unwrap(),
            Some(Erc20Call::Approve {
                token: TOKEN,
                spender: TO,
                amount: U256::MAX
            })
        );
    }

    #[test]
    fn trailing_bytes_still_decode_as_the_erc20_call_and_non_canonical_arguments_are_refused() {
        let good = ["a9059cbb".to_owned(), word_addr(TO), word(1000)];
        let expected = Some(Erc20Call::Transfer {
            token: TOKEN,
            to: TO,
            amount: U256::from(1000),
        });
        // One trailing byte, one trailing word: a Solidity token ignores them and pays TO.
        let mut data = calldata(&good.iter().map(String::as_str).collect::<Vec<_>>());
        data.push(0);
        assert_eq!(decode(TOKEN, &data).unwrap(), expected);
        data.extend_from_slice(&[0xff; 31]);
        assert_eq!(decode(TOKEN, &data).unwrap(), expected);
        // Truncated by one byte; selector only.
        let mut data = calldata(&good.iter().map(String::as_str).collect::<Vec<_>>());
        data.pop();
        let err = decode(TOKEN, &data).unwrap_err().to_string();
        assert!(
            err.contains("ERC-20 calldata of 67 bytes; its selector takes 68"),
            "{err}"
        );
        assert!(decode(TOKEN, &calldata(&["a9059cbb"])).is_err());
        // Dirty address padding: a token reading only the low 20 bytes would pay TO.
        let dirty = format!("01{}", &word_addr(TO)[2..]);
        let err = decode(TOKEN, &calldata(&["a9059cbb", &dirty, &word(1000)])).unwrap_err();
        assert!(err.to_string().contains("not canonically encoded"), "{err}");
        // Another selector is not ERC-20, whatever follows it.
        let data = calldata(&["deadbeef", &word_addr(TO), &word(1000)]);
        assert_eq!(decode(TOKEN, &data).unwrap(), None);
        assert_eq!(decode(TOKEN, &calldata(&["a905"])).unwrap(), None);
    }
}
