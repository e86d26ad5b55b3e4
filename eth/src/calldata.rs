//! Calldata decoded for approvers: the functions of the interfaces a custody desk meets most
//! (ERC-20, ERC-721, ERC-1155, Permit2, Safe, Uniswap's universal router), their arguments
//! by name, and the calls a Safe transaction or a `multiSend` batch makes, decoded in turn.
//!
//! Display only: the policy's rules read the selector and the strict ERC-20 decoding
//! (`erc20.rs`). This never refuses a transaction; it describes one, and says so when the
//! encoding is not canonical (a contract may then read other values than shown). Bounded:
//! nesting, items and text are capped, so hostile calldata costs a fixed amount of work and
//! intent size whatever it claims.

use std::sync::LazyLock;

use alloy_dyn_abi::{DynSolType, DynSolValue};
use alloy_primitives::{Address, Bytes, U256, keccak256};
use strongroom_policy::{CallArg, DecodedCall, InnerCall, RouterCommand};

/// Deepest call decoded (a Safe transaction → `multiSend` → a token call is depth 2).
const MAX_DEPTH: usize = 3;
/// Most calls decoded in one transaction, nested ones included.
const MAX_CALLS: usize = 64;
/// Most characters of argument text in one transaction.
const MAX_TEXT: usize = 32 * 1024;
/// Most bytes of a `bytes` argument shown (the whole calldata is in the intent anyway).
const MAX_SHOWN_BYTES: usize = 256;
/// Most elements of an array shown.
const MAX_SHOWN_ITEMS: usize = 32;

/// Parameters: (ABI type, name), in order.
type Params = &'static [(&'static str, &'static str)];

/// One known function: its interface, name and parameters.
struct Function {
    standard: &'static str,
    name: &'static str,
    params: Params,
}

/// What a function does beyond its arguments.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Special {
    None,
    SafeExec,
    MultiSend,
    Router,
}

const FUNCTIONS: &[(Function, Special)] = &[
    // ERC-20 and ERC-721 share `approve` and `transferFrom` selectors (the third word is an
    // amount to one, a token id to the other).
    (
        Function {
            standard: "ERC-20",
            name: "transfer",
            params: &[("address", "to"), ("uint256", "amount")],
        },
        Special::None,
    ),
    (
        Function {
            standard: "ERC-20 / ERC-721",
            name: "approve",
            params: &[("address", "spender"), ("uint256", "amountOrTokenId")],
        },
        Special::None,
    ),
    (
        Function {
            standard: "ERC-20 / ERC-721",
            name: "transferFrom",
            params: &[
                ("address", "from"),
                ("address", "to"),
                ("uint256", "amountOrTokenId"),
            ],
        },
        Special::None,
    ),
    (
        Function {
            standard: "ERC-20",
            name: "increaseAllowance",
            params: &[("address", "spender"), ("uint256", "addedValue")],
        },
        Special::None,
    ),
    (
        Function {
            standard: "ERC-721",
            name: "safeTransferFrom",
            params: &[
                ("address", "from"),
                ("address", "to"),
                ("uint256", "tokenId"),
            ],
        },
        Special::None,
    ),
    (
        Function {
            standard: "ERC-721",
            name: "safeTransferFrom",
            params: &[
                ("address", "from"),
                ("address", "to"),
                ("uint256", "tokenId"),
                ("bytes", "data"),
            ],
        },
        Special::None,
    ),
    (
        Function {
            standard: "ERC-721 / ERC-1155",
            name: "setApprovalForAll",
            params: &[("address", "operator"), ("bool", "approved")],
        },
        Special::None,
    ),
    (
        Function {
            standard: "ERC-1155",
            name: "safeTransferFrom",
            params: &[
                ("address", "from"),
                ("address", "to"),
                ("uint256", "id"),
                ("uint256", "value"),
                ("bytes", "data"),
            ],
        },
        Special::None,
    ),
    (
        Function {
            standard: "ERC-1155",
            name: "safeBatchTransferFrom",
            params: &[
                ("address", "from"),
                ("address", "to"),
                ("uint256[]", "ids"),
                ("uint256[]", "values"),
                ("bytes", "data"),
            ],
        },
        Special::None,
    ),
    (
        Function {
            standard: "Permit2",
            name: "approve",
            params: &[
                ("address", "token"),
                ("address", "spender"),
                ("uint160", "amount"),
                ("uint48", "expiration"),
            ],
        },
        Special::None,
    ),
    (
        Function {
            standard: "Permit2",
            name: "transferFrom",
            params: &[
                ("address", "from"),
                ("address", "to"),
                ("uint160", "amount"),
                ("address", "token"),
            ],
        },
        Special::None,
    ),
    (
        Function {
            standard: "Permit2",
            name: "permit",
            params: &[
                ("address", "owner"),
                (
                    "((address,uint160,uint48,uint48),address,uint256)",
                    "permitSingle",
                ),
                ("bytes", "signature"),
            ],
        },
        Special::None,
    ),
    (
        Function {
            standard: "Permit2",
            name: "permitTransferFrom",
            params: &[
                ("((address,uint256),uint256,uint256)", "permit"),
                ("(address,uint256)", "transferDetails"),
                ("address", "owner"),
                ("bytes", "signature"),
            ],
        },
        Special::None,
    ),
    (
        Function {
            standard: "Safe",
            name: "execTransaction",
            params: &[
                ("address", "to"),
                ("uint256", "value"),
                ("bytes", "data"),
                ("uint8", "operation"),
                ("uint256", "safeTxGas"),
                ("uint256", "baseGas"),
                ("uint256", "gasPrice"),
                ("address", "gasToken"),
                ("address", "refundReceiver"),
                ("bytes", "signatures"),
            ],
        },
        Special::SafeExec,
    ),
    (
        Function {
            standard: "Safe MultiSend",
            name: "multiSend",
            params: &[("bytes", "transactions")],
        },
        Special::MultiSend,
    ),
    (
        Function {
            standard: "Uniswap universal router",
            name: "execute",
            params: &[
                ("bytes", "commands"),
                ("bytes[]", "inputs"),
                ("uint256", "deadline"),
            ],
        },
        Special::Router,
    ),
    (
        Function {
            standard: "Uniswap universal router",
            name: "execute",
            params: &[("bytes", "commands"), ("bytes[]", "inputs")],
        },
        Special::Router,
    ),
];

/// The universal router's commands (`Commands.sol`, command byte & 0x3f) and the layout
/// of each one's input where it is a plain ABI tuple. Amounts are read as uint256, which
/// shows a uint160 the same.
const ROUTER_COMMANDS: &[(u8, &str, Params)] = &[
    (
        0x00,
        "V3_SWAP_EXACT_IN",
        &[
            ("address", "recipient"),
            ("uint256", "amountIn"),
            ("uint256", "amountOutMin"),
            ("bytes", "path"),
            ("bool", "payerIsUser"),
        ],
    ),
    (
        0x01,
        "V3_SWAP_EXACT_OUT",
        &[
            ("address", "recipient"),
            ("uint256", "amountOut"),
            ("uint256", "amountInMax"),
            ("bytes", "path"),
            ("bool", "payerIsUser"),
        ],
    ),
    (
        0x02,
        "PERMIT2_TRANSFER_FROM",
        &[
            ("address", "token"),
            ("address", "recipient"),
            ("uint256", "amount"),
        ],
    ),
    (0x03, "PERMIT2_PERMIT_BATCH", &[]),
    (
        0x04,
        "SWEEP",
        &[
            ("address", "token"),
            ("address", "recipient"),
            ("uint256", "amountMin"),
        ],
    ),
    (
        0x05,
        "TRANSFER",
        &[
            ("address", "token"),
            ("address", "recipient"),
            ("uint256", "value"),
        ],
    ),
    (
        0x06,
        "PAY_PORTION",
        &[
            ("address", "token"),
            ("address", "recipient"),
            ("uint256", "bips"),
        ],
    ),
    (
        0x08,
        "V2_SWAP_EXACT_IN",
        &[
            ("address", "recipient"),
            ("uint256", "amountIn"),
            ("uint256", "amountOutMin"),
            ("address[]", "path"),
            ("bool", "payerIsUser"),
        ],
    ),
    (
        0x09,
        "V2_SWAP_EXACT_OUT",
        &[
            ("address", "recipient"),
            ("uint256", "amountOut"),
            ("uint256", "amountInMax"),
            ("address[]", "path"),
            ("bool", "payerIsUser"),
        ],
    ),
    (
        0x0a,
        "PERMIT2_PERMIT",
        &[
            (
                "((address,uint160,uint48,uint48),address,uint256)",
                "permitSingle",
            ),
            ("bytes", "signature"),
        ],
    ),
    (
        0x0b,
        "WRAP_ETH",
        &[("address", "recipient"), ("uint256", "amountMin")],
    ),
    (
        0x0c,
        "UNWRAP_WETH",
        &[("address", "recipient"), ("uint256", "amountMin")],
    ),
    (0x0d, "PERMIT2_TRANSFER_FROM_BATCH", &[]),
    (0x0e, "BALANCE_CHECK_ERC20", &[]),
    (0x10, "V4_SWAP", &[]),
    (0x11, "V3_POSITION_MANAGER_PERMIT", &[]),
    (0x12, "V3_POSITION_MANAGER_CALL", &[]),
    (0x13, "V4_INITIALIZE_POOL", &[]),
    (0x14, "V4_POSITION_MANAGER_CALL", &[]),
    (0x21, "EXECUTE_SUB_PLAN", &[]),
];

/// A known function ready to match: its selector, its parameter types as one tuple.
struct Known {
    selector: [u8; 4],
    function: &'static Function,
    special: Special,
    ty: DynSolType,
}

/// The table with selectors computed from the signatures (keccak256, as Solidity does).
static KNOWN: LazyLock<Vec<Known>> = LazyLock::new(|| {
    FUNCTIONS
        .iter()
        .filter_map(|(function, special)| {
            let ty = tuple_type(function.params)?;
            let hash = keccak256(signature(function).as_bytes());
            Some(Known {
                selector: [hash[0], hash[1], hash[2], hash[3]],
                function,
                special: *special,
                ty,
            })
        })
        .collect()
});

fn tuple_type(params: &[(&str, &str)]) -> Option<DynSolType> {
    let types = params
        .iter()
        .map(|(ty, _)| DynSolType::parse(ty).ok())
        .collect::<Option<Vec<_>>>()?;
    Some(DynSolType::Tuple(types))
}

/// `name(type,type,…)`: the text whose hash is the selector.
fn signature(f: &Function) -> String {
    let types: Vec<&str> = f.params.iter().map(|(ty, _)| *ty).collect();
    format!("{}({})", f.name, types.join(","))
}

/// `name(type name, …)`: what approvers read.
fn named_signature(f: &Function) -> String {
    let params: Vec<String> = f
        .params
        .iter()
        .map(|(ty, name)| format!("{ty} {name}"))
        .collect();
    format!("{}({})", f.name, params.join(", "))
}

/// What one transaction's decoding may still spend.
struct Budget {
    calls: usize,
    text: usize,
    exhausted: bool,
}

/// Decodes calldata for display when its selector is a known function's; `None` otherwise
/// (the intent then shows the calldata as hex only).
pub(crate) fn decode(data: &[u8]) -> Option<DecodedCall> {
    let mut budget = Budget {
        calls: MAX_CALLS,
        text: MAX_TEXT,
        exhausted: false,
    };
    let mut call = decode_at(data, 0, &mut budget)?;
    if budget.exhausted {
        add_note(
            &mut call,
            "display limits reached: some nested calls or values are not shown decoded (the \
             calldata is shown whole)",
        );
    }
    Some(call)
}

fn add_note(call: &mut DecodedCall, note: &str) {
    call.note = Some(match call.note.take() {
        Some(n) => format!("{n}; {note}"),
        None => note.to_string(),
    });
}

fn decode_at(data: &[u8], depth: usize, budget: &mut Budget) -> Option<DecodedCall> {
    let selector = data.get(..4)?;
    let known = KNOWN.iter().find(|k| k.selector[..] == *selector)?;
    if depth > MAX_DEPTH || budget.calls == 0 {
        budget.exhausted = true;
        return None;
    }
    budget.calls -= 1;
    let args = &data[4..];
    let mut call = DecodedCall {
        standard: known.function.standard.to_string(),
        function: named_signature(known.function),
        args: Vec::new(),
        calls: Vec::new(),
        commands: Vec::new(),
        note: None,
    };
    let values = match known.ty.abi_decode_sequence(args) {
        Ok(DynSolValue::Tuple(values)) => values,
        Ok(_) | Err(_) => {
            call.note = Some(
                "the selector is this function's but the arguments do not decode: the call \
                 would revert or do something else"
                    .into(),
            );
            return Some(call);
        }
    };
    let encoded = DynSolValue::Tuple(values.clone()).abi_encode_params();
    if encoded != args {
        call.note = Some(if args.starts_with(&encoded) {
            format!(
                "{} bytes follow the arguments (Solidity contracts ignore them)",
                args.len() - encoded.len()
            )
        } else {
            "the arguments are not canonically encoded: the contract may read other values \
             than shown"
                .into()
        });
    }
    call.args = named_args(known.function.params, &values, budget);
    match known.special {
        Special::None => {}
        Special::SafeExec => {
            if let [
                DynSolValue::Address(to),
                DynSolValue::Uint(value, _),
                DynSolValue::Bytes(inner),
                DynSolValue::Uint(operation, _),
                ..,
            ] = values.as_slice()
            {
                let call_data = Bytes::copy_from_slice(inner);
                let decoded = decode_at(inner, depth + 1, budget).map(Box::new);
                call.calls.push(InnerCall {
                    operation: operation_name(*operation),
                    to: *to,
                    value: *value,
                    data: call_data,
                    call: decoded,
                });
            }
        }
        Special::MultiSend => {
            if let [DynSolValue::Bytes(packed)] = values.as_slice() {
                let (calls, note) = multi_send(packed, depth, budget);
                call.calls = calls;
                if let Some(note) = note {
                    add_note(&mut call, &note);
                }
            }
        }
        Special::Router => {
            if let [DynSolValue::Bytes(commands), DynSolValue::Array(inputs), ..] =
                values.as_slice()
            {
                if commands.len() != inputs.len() {
                    add_note(
                        &mut call,
                        &format!(
                            "{} commands but {} inputs: the router reverts",
                            commands.len(),
                            inputs.len()
                        ),
                    );
                }
                call.commands = commands
                    .iter()
                    .zip(inputs)
                    .take(MAX_SHOWN_ITEMS)
                    .map(|(command, input)| {
                        let input = match input {
                            DynSolValue::Bytes(b) => b.as_slice(),
                            _ => &[],
                        };
                        router_command(*command, input, budget)
                    })
                    .collect();
                if commands.len() > MAX_SHOWN_ITEMS {
                    add_note(
                        &mut call,
                        &format!("only the first {MAX_SHOWN_ITEMS} commands are listed"),
                    );
                }
            }
        }
    }
    Some(call)
}

fn operation_name(operation: U256) -> String {
    if operation.is_zero() {
        "call".into()
    } else if operation == U256::from(1) {
        "delegatecall".into()
    } else {
        format!("operation {operation} (not a Safe operation: the Safe reverts)")
    }
}

/// A `multiSend` batch: `operation (1) ‖ to (20) ‖ value (32) ‖ data length (32) ‖ data`,
/// repeated. The calls read, and what stopped the reading early, if anything.
fn multi_send(
    mut packed: &[u8],
    depth: usize,
    budget: &mut Budget,
) -> (Vec<InnerCall>, Option<String>) {
    let mut calls = Vec::new();
    while !packed.is_empty() {
        if calls.len() == MAX_SHOWN_ITEMS {
            let note =
                format!("only the first {MAX_SHOWN_ITEMS} transactions of the batch are listed");
            return (calls, Some(note));
        }
        let cut = format!(
            "the batch is cut short after {} transactions: the MultiSend contract reverts",
            calls.len()
        );
        let Some(head) = packed.get(..85) else {
            return (calls, Some(cut));
        };
        let operation = U256::from(head[0]);
        let to = Address::from_slice(&head[1..21]);
        let value = U256::from_be_slice(&head[21..53]);
        let data = usize::try_from(U256::from_be_slice(&head[53..85]))
            .ok()
            .and_then(|len| packed.get(85..).and_then(|rest| rest.get(..len)));
        let Some(data) = data else {
            return (calls, Some(cut));
        };
        calls.push(InnerCall {
            operation: operation_name(operation),
            to,
            value,
            data: Bytes::copy_from_slice(data),
            call: decode_at(data, depth + 1, budget).map(Box::new),
        });
        packed = &packed[85 + data.len()..];
    }
    (calls, None)
}

fn router_command(command: u8, input: &[u8], budget: &mut Budget) -> RouterCommand {
    let kind = command & 0x3f;
    let known = ROUTER_COMMANDS.iter().find(|(code, _, _)| *code == kind);
    let args = known
        .filter(|(_, _, params)| !params.is_empty())
        .and_then(|(_, _, params)| {
            let ty = tuple_type(params)?;
            match ty.abi_decode_sequence(input).ok()? {
                DynSolValue::Tuple(values) => Some(named_args(params, &values, budget)),
                _ => None,
            }
        })
        .unwrap_or_default();
    RouterCommand {
        command: known.map_or_else(
            || format!("UNKNOWN_{kind:#04x}"),
            |(_, name, _)| (*name).into(),
        ),
        allow_revert: command & 0x80 != 0,
        args,
        input: Bytes::copy_from_slice(input),
    }
}

fn named_args(
    params: &[(&str, &str)],
    values: &[DynSolValue],
    budget: &mut Budget,
) -> Vec<CallArg> {
    params
        .iter()
        .zip(values)
        .map(|((ty, name), value)| {
            let mut text = String::new();
            render(value, &mut text);
            if text.len() > budget.text {
                budget.exhausted = true;
                text = format!("… ({} characters not shown)", text.len());
            }
            budget.text = budget.text.saturating_sub(text.len());
            CallArg {
                name: (*name).to_string(),
                ty: (*ty).to_string(),
                value: text,
            }
        })
        .collect()
}

/// A value as approvers read it.
fn render(value: &DynSolValue, out: &mut String) {
    use std::fmt::Write;
    match value {
        DynSolValue::Address(a) => out.push_str(&a.to_checksum(None)),
        DynSolValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        DynSolValue::Uint(u, _) => out.push_str(&u.to_string()),
        DynSolValue::Int(i, _) => out.push_str(&i.to_string()),
        DynSolValue::FixedBytes(word, size) => {
            out.push_str("0x");
            out.push_str(&alloy_primitives::hex::encode(&word[..(*size).min(32)]));
        }
        DynSolValue::Function(f) => {
            out.push_str("0x");
            out.push_str(&alloy_primitives::hex::encode(f.as_slice()));
        }
        DynSolValue::Bytes(b) => {
            out.push_str("0x");
            out.push_str(&alloy_primitives::hex::encode(
                &b[..b.len().min(MAX_SHOWN_BYTES)],
            ));
            if b.len() > MAX_SHOWN_BYTES {
                let _ = write!(out, "… ({} bytes)", b.len());
            }
        }
        DynSolValue::String(s) => {
            let _ = write!(out, "{s:?}");
        }
        DynSolValue::Array(items) | DynSolValue::FixedArray(items) => {
            list(items, '[', ']', out);
        }
        DynSolValue::Tuple(items) => list(items, '(', ')', out),
        DynSolValue::CustomStruct { tuple, .. } => list(tuple, '(', ')', out),
    }
}

fn list(items: &[DynSolValue], open: char, close: char, out: &mut String) {
    use std::fmt::Write;
    out.push(open);
    for (i, item) in items.iter().take(MAX_SHOWN_ITEMS).enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        render(item, out);
    }
    if items.len() > MAX_SHOWN_ITEMS {
        let _ = write!(out, ", … ({} more)", items.len() - MAX_SHOWN_ITEMS);
    }
    out.push(close);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use alloy_primitives::hex;

    fn selector_of(standard: &str, name: &str, params: usize) -> String {
        let k = KNOWN
            .iter()
            .find(|k| {
                k.function.standard == standard
                    && k.function.name == name
                    && k.function.params.len() == params
            })
            .unwrap();
        hex::encode(k.selector)
    }

    #[test]
    fn every_signature_parses_and_selectors_match_the_published_ones() {
        assert_eq!(
            KNOWN.len(),
            FUNCTIONS.len(),
            "a parameter type does not parse"
        );
        for (code, name, params) in ROUTER_COMMANDS {
            assert!(
                params.is_empty() || tuple_type(params).is_some(),
                "{code:#x} {name}"
            );
        }
        // Known-answer: the selectors block explorers and 4byte.directory list.
        let expected = [
            ("ERC-20", "transfer", 2, "a9059cbb"),
            ("ERC-20 / ERC-721", "approve", 2, "095ea7b3"),
            ("ERC-20 / ERC-721", "transferFrom", 3, "23b872dd"),
            ("ERC-721", "safeTransferFrom", 3, "42842e0e"),
            ("ERC-721", "safeTransferFrom", 4, "b88d4fde"),
            ("ERC-721 / ERC-1155", "setApprovalForAll", 2, "a22cb465"),
            ("ERC-1155", "safeTransferFrom", 5, "f242432a"),
            ("ERC-1155", "safeBatchTransferFrom", 5, "2eb2c2d6"),
            ("Permit2", "approve", 4, "87517c45"),
            ("Permit2", "transferFrom", 4, "36c78516"),
            ("Permit2", "permit", 3, "2b67b570"),
            ("Permit2", "permitTransferFrom", 4, "30f28b7a"),
            ("Safe", "execTransaction", 10, "6a761202"),
            ("Safe MultiSend", "multiSend", 1, "8d80ff0a"),
            ("Uniswap universal router", "execute", 3, "3593564c"),
            ("Uniswap universal router", "execute", 2, "24856bc3"),
        ];
        for (standard, name, params, selector) in expected {
            assert_eq!(
                selector_of(standard, name, params),
                selector,
                "{standard} {name}"
            );
        }
        // Distinct selectors: one function a selector.
        let mut selectors: Vec<_> = KNOWN.iter().map(|k| k.selector).collect();
        selectors.sort_unstable();
        selectors.dedup();
        assert_eq!(selectors.len(), KNOWN.len());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod decoding {
    use super::*;
    use alloy_primitives::hex;

    fn word(bytes: &[u8]) -> String {
        format!("{:0>64}", hex::encode(bytes))
    }

    fn transfer(to: u8, amount: u64) -> Vec<u8> {
        hex::decode(format!(
            "a9059cbb{}{}",
            word(&[to; 20]),
            word(&amount.to_be_bytes())
        ))
        .unwrap()
    }

    /// `multiSend(bytes)` of these packed transactions.
    fn multi_send(packed: &[u8]) -> Vec<u8> {
        let mut data = hex::decode("8d80ff0a").unwrap();
        data.extend(
            DynSolValue::Tuple(vec![DynSolValue::Bytes(packed.to_vec())]).abi_encode_params(),
        );
        data
    }

    fn packed(operation: u8, to: u8, inner: &[u8]) -> Vec<u8> {
        let mut p = vec![operation];
        p.extend([to; 20]);
        p.extend([0; 32]);
        p.extend(U256::from(inner.len()).to_be_bytes::<32>());
        p.extend(inner);
        p
    }

    #[test]
    fn a_token_transfer_reads_by_name_and_trailing_bytes_are_noted() {
        let call = decode(&transfer(0x22, 5)).unwrap();
        assert_eq!(call.standard, "ERC-20");
        assert_eq!(call.args[0].value, format!("0x{}", "22".repeat(20)));
        assert_eq!(call.args[1].value, "5");
        assert_eq!(call.note, None);
        let mut longer = transfer(0x22, 5);
        longer.push(0);
        let note = decode(&longer).unwrap().note.unwrap();
        assert!(note.contains("1 bytes follow"), "{note}");
        // Dirty padding in the address word: shown, flagged.
        let mut dirty = transfer(0x22, 5);
        dirty[4] = 0xff;
        let note = decode(&dirty).unwrap().note.unwrap();
        assert!(note.contains("not canonically encoded"), "{note}");
        // Cut short: the function is named, the arguments are not made up.
        let call = decode(&transfer(0x22, 5)[..40]).unwrap();
        assert!(call.args.is_empty());
        assert!(call.note.unwrap().contains("do not decode"));
        // Unknown selectors are not decoded.
        assert!(decode(&[1, 2, 3, 4, 5]).is_none());
        assert!(decode(&[0xa9, 0x05]).is_none());
    }

    #[test]
    fn a_multisend_batch_lists_each_call_and_flags_delegatecalls() {
        let mut batch = packed(0, 0x70, &transfer(0x22, 5));
        batch.extend(packed(1, 0x71, &[0xde, 0xad]));
        let call = decode(&multi_send(&batch)).unwrap();
        assert_eq!(call.calls.len(), 2);
        assert_eq!(call.calls[0].operation, "call");
        assert_eq!(call.calls[0].call.as_ref().unwrap().args[1].value, "5");
        assert_eq!(call.calls[1].operation, "delegatecall");
        assert!(call.calls[1].call.is_none());
        assert_eq!(call.calls[1].data.as_ref(), &[0xde, 0xad]);
        // A batch that claims more data than it has.
        let mut cut = packed(0, 0x70, &transfer(0x22, 5));
        cut.truncate(cut.len() - 1);
        let call = decode(&multi_send(&cut)).unwrap();
        assert!(call.note.unwrap().contains("cut short"));
    }

    #[test]
    fn nesting_and_size_are_bounded() {
        // multiSend within multiSend … deeper than MAX_DEPTH: the innermost are not decoded.
        let mut data = transfer(0x22, 5);
        for _ in 0..8 {
            data = multi_send(&packed(0, 0x70, &data));
        }
        let call = decode(&data).unwrap();
        assert!(call.note.as_deref().unwrap().contains("display limits"));
        let mut depth = 0;
        let mut at = &call;
        while let Some(inner) = at.calls.first().and_then(|c| c.call.as_deref()) {
            at = inner;
            depth += 1;
        }
        assert_eq!(depth, MAX_DEPTH);
        // A batch of many calls: at most MAX_SHOWN_ITEMS listed.
        let one = packed(0, 0x70, &transfer(0x22, 5));
        let call = decode(&multi_send(&one.repeat(200))).unwrap();
        assert_eq!(call.calls.len(), MAX_SHOWN_ITEMS);
        assert!(call.note.unwrap().contains("only the first"));
        // A long bytes argument is shown cut, with its length.
        let erc721 = hex::decode("b88d4fde").unwrap();
        let args = DynSolValue::Tuple(vec![
            DynSolValue::Address(Address::repeat_byte(1)),
            DynSolValue::Address(Address::repeat_byte(2)),
            DynSolValue::Uint(U256::from(7), 256),
            DynSolValue::Bytes(vec![0xee; 5000]),
        ])
        .abi_encode_params();
        let call = decode(&[erc721, args].concat()).unwrap();
        assert!(call.args[3].value.ends_with("… (5000 bytes)"));
        assert!(call.args[3].value.len() < 2 * MAX_SHOWN_BYTES + 40);
    }
}
