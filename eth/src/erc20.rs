//! ERC-20 calldata decoding with alloy's ABI decoder in strict mode.

use alloy_primitives::Address;
use alloy_sol_types::SolInterface;
use alloy_sol_types::abi::AbiDecoderConfig;
use strongroom_policy::Erc20Call;

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

use abi::IErc20::IErc20Calls;

/// Decodes `data` sent to `token` as an ERC-20 `transfer`, `transferFrom` or `approve`.
///
/// Strict: exact length, zero-padded addresses, no trailing bytes. Calldata that carries an
/// ERC-20 selector but is not the canonical encoding gets `None`, so the policy sees an
/// unknown call rather than an amount that a token contract might read differently.
pub(crate) fn decode(token: Address, data: &[u8]) -> Option<Erc20Call> {
    let config = AbiDecoderConfig::new().strict(true);
    let call = IErc20Calls::abi_decode_with_config(data, config).ok()?;
    Some(match call {
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
    })
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
            decode(TOKEN, &data),
            Some(Erc20Call::Transfer {
                token: TOKEN,
                to: TO,
                amount: U256::from(1000)
            })
        );
        let data = calldata(&["23b872dd", &word_addr(FROM), &word_addr(TO), &word(7)]);
        assert_eq!(
            decode(TOKEN, &data),
            Some(Erc20Call::TransferFrom {
                token: TOKEN,
                from: FROM,
                to: TO,
                amount: U256::from(7)
            })
        );
        let data = calldata(&["095ea7b3", &word_addr(TO), &"f".repeat(64)]);
        assert_eq!(
            decode(TOKEN, &data),
            Some(Erc20Call::Approve {
                token: TOKEN,
                spender: TO,
                amount: U256::MAX
            })
        );
    }

    #[test]
    fn non_canonical_erc20_calldata_is_not_decoded() {
        let good = ["a9059cbb".to_owned(), word_addr(TO), word(1000)];
        // Truncated by one byte.
        let mut data = calldata(&good.iter().map(String::as_str).collect::<Vec<_>>());
        data.pop();
        assert_eq!(decode(TOKEN, &data), None);
        // One trailing byte, one trailing word.
        let mut data = calldata(&good.iter().map(String::as_str).collect::<Vec<_>>());
        data.push(0);
        assert_eq!(decode(TOKEN, &data), None);
        data.extend_from_slice(&[0; 31]);
        assert_eq!(decode(TOKEN, &data), None);
        // Dirty address padding: a token reading only the low 20 bytes would pay TO.
        let dirty = format!("01{}", &word_addr(TO)[2..]);
        let data = calldata(&["a9059cbb", &dirty, &word(1000)]);
        assert_eq!(decode(TOKEN, &data), None);
        // Selector only; unknown selector.
        assert_eq!(decode(TOKEN, &calldata(&["a9059cbb"])), None);
        let data = calldata(&["deadbeef", &word_addr(TO), &word(1000)]);
        assert_eq!(decode(TOKEN, &data), None);
    }
}
