#!/usr/bin/env python3
"""Drives Strongroom's JSON-RPC endpoint (POST /rpc) with web3.py, as any Python Ethereum
application would after changing its node URL, and checks every answer with eth-account
(an implementation independent of Strongroom's): it recovers the signer of each signed
transaction, EIP-712 document and personal message itself and compares it with the account.

usage: rpc_clients.py URL TOKEN [ADDRESS]
  URL      the /rpc endpoint, e.g. http://127.0.0.1:8080/rpc
  TOKEN    the bearer token (mock mode: $STRONGROOM_DATA_DIR/dev/rpc-token)
  ADDRESS  the account to sign with (must be in eth_accounts); default: the first one

Prints one JSON object summarising every check and exits 0, or at the first failed check
prints the summary so far with "ok": false and the failure, says what failed on stderr and
exits 1. Expects mock mode's development policy: chain 11155111 (Sepolia), transactions on
chains 1 and 11155111 up to 1 ETH, any typed data but token permits, any message.
"""
import json
import sys
from importlib.metadata import version

import requests
from eth_account import Account
from eth_account._utils.legacy_transactions import Transaction as LegacyTransaction
from eth_account.messages import encode_defunct, encode_typed_data
from eth_account.typed_transactions import TypedTransaction
from eth_utils import is_checksum_address, to_checksum_address
from hexbytes import HexBytes
from web3 import HTTPProvider, Web3

SEPOLIA = 11155111
RECIPIENT = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
STRANGER = "0x000000000000000000000000000000000000dEaD"
ETHER = 10**18
GWEI = 10**9
MESSAGE = "Strongroom interop: web3.py signs through /rpc"

SUMMARY = {"client": f"web3.py {version('web3')}", "verifier": f"eth-account {version('eth-account')}",
           "ok": False, "checks": {}}


class CheckFailed(Exception):
    pass


def check(name, condition, detail):
    """Records a check; raises at the first failure."""
    if not condition:
        raise CheckFailed(f"{name}: {detail}")


def passed(name, **details):
    SUMMARY["checks"][name] = {"ok": True, **details}


def hexq(n):
    return hex(n)


def provider(url, token=None):
    # Passing headers replaces web3.py's defaults, so keep its Content-Type and User-Agent.
    headers = HTTPProvider.get_request_headers()
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    # No retries: an authentication failure must surface at once.
    return HTTPProvider(url, request_kwargs={"headers": headers, "timeout": 30},
                        exception_retry_configuration=None)


def rpc(w3, method, params):
    """Sends one JSON-RPC request through web3.py's provider; returns the whole response."""
    return w3.provider.make_request(method, params)


def result_of(name, response):
    check(name, "error" not in response and "result" in response,
          f"expected a result, got {json.dumps(response)}")
    return response["result"]


def error_of(name, response, code):
    error = response.get("error")
    check(name, isinstance(error, dict) and error.get("code") == code,
          f"expected JSON-RPC error {code}, got {json.dumps(response)}")
    return error


def check_chain_and_accounts(w3, wanted):
    chain_id = w3.eth.chain_id
    raw_chain_id = result_of("eth_chainId", rpc(w3, "eth_chainId", []))
    check("eth_chainId", chain_id == SEPOLIA and raw_chain_id == hex(SEPOLIA),
          f"expected {hex(SEPOLIA)}, got {raw_chain_id!r} ({chain_id})")
    passed("eth_chainId", result=raw_chain_id)

    accounts = w3.eth.accounts
    raw_accounts = result_of("eth_accounts", rpc(w3, "eth_accounts", []))
    check("eth_accounts", isinstance(raw_accounts, list) and len(raw_accounts) >= 1,
          f"expected at least one account, got {raw_accounts!r}")
    check("eth_accounts", all(isinstance(a, str) and is_checksum_address(a) for a in raw_accounts),
          f"expected EIP-55 checksummed addresses, got {raw_accounts!r}")
    check("eth_accounts", list(accounts) == raw_accounts,
          f"web3.py read {accounts!r}, the raw answer was {raw_accounts!r}")
    if wanted is None:
        address = raw_accounts[0]
    else:
        address = to_checksum_address(wanted)
        check("eth_accounts", address in raw_accounts, f"{address} is not among {raw_accounts!r}")
    passed("eth_accounts", result=raw_accounts)
    SUMMARY["chain_id"] = chain_id
    SUMMARY["accounts"] = raw_accounts
    SUMMARY["address"] = address

    # web3.py's batch: both reads in one HTTP request.
    with w3.batch_requests() as batch:
        batch.add(w3.eth.chain_id)
        batch.add(w3.eth.accounts)
        batched = batch.execute()
    check("batch", batched[0] == chain_id and list(batched[1]) == raw_accounts,
          f"batched eth_chainId + eth_accounts gave {batched!r}")
    passed("batch", methods=["eth_chainId", "eth_accounts"])
    return address


def address_of(to):
    return to_checksum_address(to) if to else None


def decode_transaction(raw):
    """The fields eth-account decodes from a signed transaction ("to" checksummed)."""
    if raw[0] >= 0x7F:
        tx = LegacyTransaction.from_bytes(HexBytes(raw)).as_dict()
        v = tx["v"]
        check("legacy transaction", v >= 35, f"v = {v}: not EIP-155 replay protected")
        return {"type": 0, "chainId": (v - 35) // 2, "nonce": tx["nonce"], "to": address_of(tx["to"]),
                "value": tx["value"], "gas": tx["gas"], "gasPrice": tx["gasPrice"]}
    tx = TypedTransaction.from_bytes(HexBytes(raw)).as_dict()
    out = {"type": raw[0], "chainId": tx["chainId"], "nonce": tx["nonce"], "to": address_of(tx["to"]),
           "value": tx["value"], "gas": tx["gas"]}
    for fee in ("gasPrice", "maxFeePerGas", "maxPriorityFeePerGas"):
        if fee in tx:
            out[fee] = tx[fee]
    return out


def check_transaction(w3, name, address, tx):
    request = {"from": address, **{k: v if k == "to" else hexq(v) for k, v in tx.items()}}
    raw_hex = result_of(name, rpc(w3, "eth_signTransaction", [request]))
    check(name, isinstance(raw_hex, str) and raw_hex.startswith("0x"),
          f"expected the raw transaction as 0x hex, got {raw_hex!r}")
    raw = bytes.fromhex(raw_hex[2:])
    signer = Account.recover_transaction(raw)
    check(name, signer == address, f"eth-account recovers {signer}, expected {address}")
    decoded = decode_transaction(raw)
    for field, sent in tx.items():
        got = decoded.get(field)
        check(name, got == sent, f"{field}: sent {sent!r}, the signed transaction has {got!r}")
    check(name, decoded["type"] == (2 if "maxFeePerGas" in tx else 0),
          f"unexpected transaction type {decoded['type']}")
    passed(name, signer=signer, raw=raw_hex, decoded=decoded)


def permit(owner):
    """An EIP-2612 permit (a small USDC allowance on Sepolia): the development policy lists no
    permit spenders, so Strongroom must refuse to sign it."""
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"}],
            "Permit": [
                {"name": "owner", "type": "address"}, {"name": "spender", "type": "address"},
                {"name": "value", "type": "uint256"}, {"name": "nonce", "type": "uint256"},
                {"name": "deadline", "type": "uint256"}],
        },
        "primaryType": "Permit",
        "domain": {"name": "USDC", "version": "2", "chainId": SEPOLIA,
                   "verifyingContract": "0x1c7D4B196Cb0C7B01d743Fbc6116a902379C7238"},
        "message": {"owner": owner, "spender": RECIPIENT, "value": 1000000, "nonce": 0,
                    "deadline": 4102444800},
    }


def ballot():
    """A governance vote: arrays, bool and bytes32 besides the usual types."""
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"}],
            "Ballot": [
                {"name": "proposalId", "type": "uint256"}, {"name": "support", "type": "bool"},
                {"name": "delegates", "type": "address[]"}, {"name": "reason", "type": "string"},
                {"name": "salt", "type": "bytes32"}],
        },
        "primaryType": "Ballot",
        "domain": {"name": "Strongroom Governor", "version": "1", "chainId": SEPOLIA,
                   "verifyingContract": "0x5FbDB2315678afecb367f032d93F642f64180aa3"},
        "message": {"proposalId": 42, "support": True,
                    "delegates": [RECIPIENT, "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"],
                    "reason": "interop", "salt": "0x" + "ab" * 32},
    }


def mail():
    """EIP-712's own example."""
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"}],
            "Person": [{"name": "name", "type": "string"}, {"name": "wallet", "type": "address"}],
            "Mail": [{"name": "from", "type": "Person"}, {"name": "to", "type": "Person"},
                     {"name": "contents", "type": "string"}],
        },
        "primaryType": "Mail",
        "domain": {"name": "Ether Mail", "version": "1", "chainId": SEPOLIA,
                   "verifyingContract": "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC"},
        "message": {
            "from": {"name": "Cow", "wallet": "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"},
            "to": {"name": "Bob", "wallet": "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"},
            "contents": "Hello, Bob!",
        },
    }


def check_typed_data(w3, name, address, document, as_string):
    # ethers and MetaMask send the document as a JSON string; others as an object.
    payload = json.dumps(document) if as_string else document
    signature = result_of(name, rpc(w3, "eth_signTypedData_v4", [address, payload]))
    check(name, isinstance(signature, str) and len(HexBytes(signature)) == 65,
          f"expected a 65-byte signature, got {signature!r}")
    signer = Account.recover_message(encode_typed_data(full_message=document), signature=signature)
    check(name, signer == address, f"eth-account recovers {signer}, expected {address}")
    passed(name, signer=signer, signature=signature, params="JSON string" if as_string else "object")


def check_web3_typed_data(w3, address):
    # web3.py's own method (it sends `eth_signTypedData`, web3signer's name for EIP-712).
    name = "web3_sign_typed_data"
    document = mail()
    signature = w3.eth.sign_typed_data(address, document)
    signer = Account.recover_message(encode_typed_data(full_message=document), signature=signature)
    check(name, signer == address, f"eth-account recovers {signer}, expected {address}")
    passed(name, signer=signer, signature=HexBytes(signature).to_0x_hex())


def check_personal_messages(w3, address):
    data = Web3.to_hex(text=MESSAGE)
    signature = result_of("personal_sign", rpc(w3, "personal_sign", [data, address]))
    signer = Account.recover_message(encode_defunct(text=MESSAGE), signature=signature)
    check("personal_sign", signer == address, f"eth-account recovers {signer}, expected {address}")
    passed("personal_sign", signer=signer, signature=signature)

    # web3.py's own eth_sign method: params [address, data].
    signature = w3.eth.sign(address, text=MESSAGE)
    signer = Account.recover_message(encode_defunct(text=MESSAGE), signature=signature)
    check("eth_sign", signer == address, f"eth-account recovers {signer}, expected {address}")
    passed("eth_sign", signer=signer, signature=Web3.to_hex(signature))


def check_denied(name, response):
    """A policy denial: error -32000 whose data.decision names the rule and the reason."""
    error = error_of(name, response, -32000)
    decision = (error.get("data") or {}).get("decision") or {}
    check(name, isinstance(decision.get("rule"), str) and decision["rule"]
          and decision.get("result") and decision.get("reason"),
          f"expected data.decision = {{result, rule, reason}}, got {json.dumps(error)}")
    passed(name, error=error)


def check_refusals(w3, url, address, eip1559):
    # 2 ETH: over the development policy's 1 ETH cap.
    big = {"from": address, **{k: v if k == "to" else hexq(v) for k, v in eip1559.items()},
           "value": hexq(2 * ETHER), "nonce": hexq(1)}
    check_denied("denied_transaction", rpc(w3, "eth_signTransaction", [big]))
    # A token permit to a spender the policy does not list.
    check_denied("denied_permit", rpc(w3, "eth_signTypedData_v4", [address, permit(address)]))

    # A from address Strongroom holds no key for.
    stranger = {**big, "from": STRANGER, "value": hexq(ETHER // 100)}
    error = error_of("unknown_from", rpc(w3, "eth_signTransaction", [stranger]), -32602)
    passed("unknown_from", error=error)

    # Without the token: HTTP 401 with a JSON-RPC error -32002, for a read and a signature.
    anonymous = Web3(provider(url))
    for method, call in [
        ("eth_accounts", lambda: anonymous.eth.accounts),
        ("eth_signTransaction",
         lambda: rpc(anonymous, "eth_signTransaction", [{**big, "value": hexq(ETHER // 100)}])),
    ]:
        try:
            answer = call()
        except requests.HTTPError as e:
            status = e.response.status_code
            try:
                body = e.response.json()
            except ValueError:
                body = e.response.text
        else:
            raise CheckFailed(f"unauthenticated {method}: answered without the token: {answer!r}")
        check("unauthenticated", status == 401, f"{method}: expected HTTP 401, got {status}")
        check("unauthenticated", isinstance(body, dict) and (body.get("error") or {}).get("code") == -32002,
              f"{method}: expected a JSON-RPC error -32002 body, got {body!r}")
        SUMMARY["checks"].setdefault("unauthenticated", {"ok": True})[method] = {
            "status": status, "error": body["error"]}


def main():
    if len(sys.argv) not in (3, 4):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    url, token = sys.argv[1], sys.argv[2]
    wanted = sys.argv[3] if len(sys.argv) == 4 else None
    SUMMARY["url"] = url
    w3 = Web3(provider(url, token))
    try:
        address = check_chain_and_accounts(w3, wanted)
        eip1559 = {"type": 2, "chainId": SEPOLIA, "nonce": 0, "to": RECIPIENT,
                   "value": ETHER // 100, "gas": 21000,
                   "maxFeePerGas": 30 * GWEI, "maxPriorityFeePerGas": 2 * GWEI}
        # Type 2 is implied by the fee fields: web3.py users rarely send "type".
        check_transaction(w3, "eth_signTransaction_eip1559", address,
                          {k: v for k, v in eip1559.items() if k != "type"})
        check_transaction(w3, "eth_signTransaction_legacy", address,
                          {"chainId": SEPOLIA, "nonce": 7, "to": RECIPIENT, "value": ETHER // 100,
                           "gas": 21000, "gasPrice": 20 * GWEI})
        check_typed_data(w3, "eth_signTypedData_v4_mail", address, mail(), as_string=True)
        check_typed_data(w3, "eth_signTypedData_v4_ballot", address, ballot(), as_string=False)
        check_web3_typed_data(w3, address)
        check_personal_messages(w3, address)
        check_refusals(w3, url, address, eip1559)
    except Exception as e:  # noqa: BLE001 - any failure (a check, web3.py, the network) ends the run
        kind = "" if isinstance(e, CheckFailed) else f"{type(e).__name__}: "
        SUMMARY["failed"] = f"{kind}{e}"
        print(json.dumps(SUMMARY))
        print(f"rpc_clients.py (web3.py): FAILED {kind}{e}", file=sys.stderr)
        sys.exit(1)
    SUMMARY["ok"] = True
    print(json.dumps(SUMMARY))


if __name__ == "__main__":
    main()
