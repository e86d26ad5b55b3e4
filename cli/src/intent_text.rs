//! An intent as an approver reads it: what moves where, the function called with its
//! arguments by name, the calls it makes in turn, and every byte that is signed.

use std::fmt::Write;

use strongroom_policy::{DecodedCall, InnerCall, Intent, TransactionIntent, format_eth};

/// The intent in plain text, several lines, nothing left out that the signature covers.
pub fn describe(intent: &Intent) -> String {
    let mut out = String::new();
    match intent {
        Intent::Transaction(t) => transaction(t, &mut out),
        Intent::TypedData(t) => {
            let _ = writeln!(
                out,
                "EIP-712 typed data {} for {} (domain {:?} version {:?}, chain {})",
                t.primary_type,
                t.verifying_contract
                    .map_or_else(|| "no verifying contract".into(), |a| a.to_checksum(None)),
                t.domain_name.as_deref().unwrap_or("-"),
                t.domain_version.as_deref().unwrap_or("-"),
                t.chain_id.map_or_else(|| "-".into(), |c| c.to_string()),
            );
            if let Some(p) = &t.permit {
                let tokens: Vec<String> = p.tokens.iter().map(|a| a.to_checksum(None)).collect();
                let _ = writeln!(
                    out,
                    "  a permit ({:?}): {} may move up to {} of [{}]",
                    p.scheme,
                    p.spender.to_checksum(None),
                    p.amount,
                    tokens.join(", ")
                );
            }
            let _ = writeln!(out, "  signing hash {}", t.signing_hash);
        }
        Intent::Message(m) => {
            let _ = writeln!(
                out,
                "personal_sign message of {} bytes: {}",
                m.len,
                m.text
                    .as_deref()
                    .map_or_else(|| "(not printable text)".into(), |t| format!("{t:?}"))
            );
            let _ = writeln!(out, "  signing hash {}", m.signing_hash);
        }
        Intent::Digest { digest } => {
            let _ = writeln!(out, "a blind digest {digest}");
        }
        Intent::CreateKey { label } => {
            let _ = writeln!(out, "create a key labelled {label:?}");
        }
        Intent::DestroyKey => out.push_str("destroy the key\n"),
    }
    out
}

fn transaction(t: &TransactionIntent, out: &mut String) {
    let to = t.to.map_or_else(
        || "a new contract (creation)".into(),
        |a| a.to_checksum(None),
    );
    let _ = writeln!(
        out,
        "{:?} transaction on chain {}, nonce {}: {} to {to}",
        t.tx_type,
        t.chain_id,
        t.nonce,
        format_eth(t.value)
    );
    let _ = writeln!(
        out,
        "  fees: at most {} ({} gas at most {} wei each)",
        format_eth(t.max_fee_total()),
        t.gas_limit,
        t.max_fee_per_gas
    );
    if let Some(call) = &t.call {
        decoded(call, 1, out);
    } else if !t.data.is_empty() {
        out.push_str("  calldata of an unknown function (shown whole below)\n");
    }
    if !t.data.is_empty() {
        let _ = writeln!(out, "  calldata ({} bytes): {}", t.data.len(), t.data);
    }
    for entry in &t.access_list {
        let keys: Vec<String> = entry.storage_keys.iter().map(ToString::to_string).collect();
        let _ = writeln!(
            out,
            "  access list: {} [{}]",
            entry.address.to_checksum(None),
            keys.join(", ")
        );
    }
    let _ = writeln!(out, "  signing hash {}", t.signing_hash);
}

fn decoded(call: &DecodedCall, depth: usize, out: &mut String) {
    let pad = "  ".repeat(depth);
    let _ = writeln!(out, "{pad}calls {} {}", call.standard, call.function);
    if let Some(note) = &call.note {
        let _ = writeln!(out, "{pad}  NOTE: {note}");
    }
    for arg in &call.args {
        let _ = writeln!(out, "{pad}  {} ({}) = {}", arg.name, arg.ty, arg.value);
    }
    for command in &call.commands {
        let revert = if command.allow_revert {
            " (may revert)"
        } else {
            ""
        };
        let _ = writeln!(out, "{pad}  command {}{revert}", command.command);
        for arg in &command.args {
            let _ = writeln!(out, "{pad}    {} ({}) = {}", arg.name, arg.ty, arg.value);
        }
        if command.args.is_empty() {
            let _ = writeln!(out, "{pad}    input {}", command.input);
        }
    }
    for inner in &call.calls {
        inner_call(inner, depth + 1, out);
    }
}

fn inner_call(inner: &InnerCall, depth: usize, out: &mut String) {
    let pad = "  ".repeat(depth);
    let warning = if inner.operation == "call" {
        ""
    } else {
        " — runs the target's code with the caller's rights"
    };
    let _ = writeln!(
        out,
        "{pad}{} to {} with {}{warning}",
        inner.operation,
        inner.to.to_checksum(None),
        format_eth(inner.value)
    );
    match &inner.call {
        Some(call) => decoded(call, depth + 1, out),
        None if !inner.data.is_empty() => {
            let _ = writeln!(out, "{pad}  calldata {}", inner.data);
        }
        None => {}
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use alloy_primitives::{Address, B256, Bytes, U256};
    use strongroom_policy::{AccessListEntry, CallArg, TxType};

    fn arg(name: &str, ty: &str, value: &str) -> CallArg {
        CallArg {
            name: name.into(),
            ty: ty.into(),
            value: value.into(),
        }
    }

    #[test]
    fn a_safe_transaction_reads_with_its_inner_call_every_byte_and_the_hash() {
        let token = Address::repeat_byte(0x70);
        let transfer = DecodedCall {
            standard: "ERC-20".into(),
            function: "transfer(address to, uint256 amount)".into(),
            args: vec![
                arg(
                    "to",
                    "address",
                    "0x2222222222222222222222222222222222222222",
                ),
                arg("amount", "uint256", "5"),
            ],
            calls: vec![],
            commands: vec![],
            note: None,
        };
        let exec = DecodedCall {
            standard: "Safe".into(),
            function: "execTransaction(…)".into(),
            args: vec![arg("to", "address", &token.to_checksum(None))],
            calls: vec![InnerCall {
                operation: "delegatecall".into(),
                to: token,
                value: U256::ZERO,
                data: Bytes::from_static(&[0xa9, 0x05, 0x9c, 0xbb]),
                call: Some(Box::new(transfer)),
            }],
            commands: vec![],
            note: Some("4 bytes follow the arguments".into()),
        };
        let intent = Intent::Transaction(TransactionIntent {
            tx_type: TxType::Eip1559,
            chain_id: 1,
            nonce: 7,
            to: Some(Address::repeat_byte(0x5a)),
            value: U256::ZERO,
            gas_limit: 100_000,
            max_fee_per_gas: 20_000_000_000,
            max_priority_fee_per_gas: Some(1),
            selector: Some([0x6a, 0x76, 0x12, 0x02]),
            data_len: 4,
            erc20: None,
            data: Bytes::from_static(&[0x6a, 0x76, 0x12, 0x02]),
            access_list: vec![AccessListEntry {
                address: Address::repeat_byte(0x33),
                storage_keys: vec![B256::repeat_byte(0x01)],
            }],
            signing_hash: B256::repeat_byte(0xcd),
            call: Some(Box::new(exec)),
        });
        let text = describe(&intent);
        for expected in [
            "on chain 1, nonce 7: 0 ETH to 0x5a5A5a5a",
            "calls Safe execTransaction(…)",
            "delegatecall to 0x7070707070707070707070707070707070707070 with 0 ETH — runs the \
             target's code",
            "calls ERC-20 transfer(address to, uint256 amount)",
            "to (address) = 0x2222222222222222222222222222222222222222",
            "amount (uint256) = 5",
            "NOTE: 4 bytes follow the arguments",
            "calldata (4 bytes): 0x6a761202",
            "access list: 0x3333333333333333333333333333333333333333 [0x0101",
            "signing hash 0xcdcd",
        ] {
            assert!(text.contains(expected), "{expected:?} not in:\n{text}");
        }
    }
}
