//! `strongroom keys …`: create, list, show and destroy signing keys.

use anyhow::{Result, bail};
use clap::Subcommand;
use serde_json::{Value, json};
use strongroom_client::{Id, Route, StatusCode};

use crate::client::{Api, print_json};
use crate::principal::PrincipalKeyChoice;

/// Key subcommands.
#[derive(Subcommand)]
pub enum KeysCommand {
    /// Generate a secp256k1 key in the enclave and print its public description (stamped
    /// with the principal key; the policy must allow create_key).
    Create {
        /// Human-readable label.
        #[arg(long, value_name = "LABEL")]
        label: String,
    },
    /// List every key, fetching page after page, as `{"keys": […], "refused": […]}`
    /// (`refused`: stored blobs the enclave would not open, with the reason).
    List {
        /// Start after this key id (keys are listed in id order).
        #[arg(long, value_name = "ID")]
        after: Option<Id>,
        /// Keys per request, 1 to 256.
        #[arg(long, value_name = "N", default_value_t = MAX_PAGE,
              value_parser = clap::value_parser!(u16).range(1..=i64::from(MAX_PAGE)))]
        page_size: u16,
    },
    /// Print one key's public description.
    Show {
        /// Key id.
        #[arg(value_name = "ID")]
        id: Id,
    },
    /// Destroy a key: the enclave refuses its blob from then on. Irreversible (stamped
    /// with the principal key; the policy must allow destroy_key).
    Destroy {
        /// Key id.
        #[arg(value_name = "ID")]
        id: Id,
    },
}

/// The enclave's largest page of `GET /v1/keys`.
const MAX_PAGE: u16 = 256;
/// Where `keys list` stops following pages: a parent attaching garbage blobs (each listed
/// under `refused`) could otherwise page on forever.
const MAX_LISTED: usize = 100_000;

/// Runs a keys subcommand.
pub fn run(api: &Api, principal: &PrincipalKeyChoice, cmd: KeysCommand) -> Result<()> {
    let answer = match cmd {
        KeysCommand::Create { label } => {
            let body = serde_json::to_vec(&json!({ "label": label }))?;
            let key = principal.load()?;
            let answer = api.stamped(&Route::CreateKey, Some(&body), &key)?;
            if answer.status != StatusCode::CREATED {
                bail!("unexpected status {} (expected 201 Created)", answer.status);
            }
            answer.body
        }
        KeysCommand::List { after, page_size } => {
            list_all(api, after.map(String::from), page_size)?
        }
        KeysCommand::Show { id } => api.get(&Route::GetKey(id))?,
        KeysCommand::Destroy { id } => {
            let key = principal.load()?;
            api.stamped(&Route::DestroyKey(id), None, &key)?.body
        }
    };
    print_json(&answer)
}

/// Every key after `after`, following `next_after` from page to page. The pages come
/// through the parent, which could serve one twice to loop the listing: each page must
/// list ids in increasing order after the previous page's last.
fn list_all(api: &Api, mut after: Option<String>, page_size: u16) -> Result<Value> {
    let mut keys = Vec::new();
    let mut refused = Vec::new();
    loop {
        let mut url = api.url(&Route::ListKeys.path());
        {
            let mut query = url.query_pairs_mut();
            if let Some(after) = &after {
                query.append_pair("after", after);
            }
            query.append_pair("limit", &page_size.to_string());
        }
        let page = api.get_url(&url)?;
        let mut ids = Vec::new();
        for (list, into) in [("keys", &mut keys), ("refused", &mut refused)] {
            let Some(items) = page[list].as_array() else {
                bail!("the key listing has no {list:?} array");
            };
            for item in items {
                let Some(id) = item["id"].as_str() else {
                    bail!("an entry of the key listing's {list:?} has no id");
                };
                ids.push(id.to_string());
                into.push(item.clone());
            }
        }
        ids.sort();
        if let (Some(first), Some(after)) = (ids.first(), &after)
            && first <= after
        {
            bail!("the key listing went backwards: {first} in the page after {after}");
        }
        if ids.windows(2).any(|w| w[0] == w[1]) {
            bail!("the key listing names a key twice in one page");
        }
        let Some(next) = page["next_after"].as_str() else {
            break;
        };
        if ids.last().map(String::as_str) != Some(next) {
            bail!("the key listing continues after {next}, not after its last key");
        }
        if keys.len() + refused.len() >= MAX_LISTED {
            bail!("stopped after {MAX_LISTED} keys; go on with --after {next}");
        }
        after = Some(next.to_string());
    }
    Ok(json!({ "keys": keys, "refused": refused }))
}
