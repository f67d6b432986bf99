//! Cursor pagination (spec §2): ordered collections and the `{"object":"list",...}` page.
//!
//! Algorithm (spec §2.4): filter; sort by (`created_at`, insertion order) ascending, or the
//! exact reverse for `order=desc`; `after=X` keeps what comes after X in that order, `before=Y`
//! what comes before Y; then the first `limit` items, or with `before` the *last* `limit`
//! (the ones nearest Y, still in the requested order). `has_more` says whether more matching
//! items lie beyond the page in the paging direction (after the page, or with `before` ahead
//! of it). `first_id`/`last_id` are null on an empty page.
//!
//! A cursor must be the id of an object in the (unfiltered) collection; an unknown cursor is a
//! 400 `invalid_request_error` (param `after`/`before`, code `invalid_value`) rather than an
//! empty page, so a client that pages with a made-up or foreign cursor finds out at once.

use std::collections::HashMap;

use super::error::ApiError;

/// One stored object: its id, sort key, pre-serialised JSON and the value a list filters on
/// (message `run_id`, file `purpose`, vector-store file `status`).
#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub id: String,
    pub created_at: i64,
    pub json: String,
    pub tag: Option<String>,
}

/// Items in ascending (`created_at`, insertion) order, indexed by id.
#[derive(Debug, Default)]
pub(crate) struct Collection {
    items: Vec<Item>,
    index: HashMap<String, usize>,
}

impl Collection {
    /// Sorts `items` (stable, so equal timestamps keep their given order). Duplicate ids are an
    /// error naming the first repeated one.
    pub fn new(mut items: Vec<Item>) -> Result<Self, String> {
        items.sort_by_key(|i| i.created_at);
        let mut index = HashMap::with_capacity(items.len());
        for (pos, item) in items.iter().enumerate() {
            if index.insert(item.id.clone(), pos).is_some() {
                return Err(format!("duplicate id {:?}", item.id));
            }
        }
        Ok(Collection { items, index })
    }

    pub fn get(&self, id: &str) -> Option<&Item> {
        self.index.get(id).map(|&p| &self.items[p])
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Order {
    Asc,
    Desc,
}

/// Bounds of one list endpoint's `limit`, and whether it takes `before`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ListSpec {
    pub default_limit: u64,
    pub max_limit: u64,
    pub allows_before: bool,
}

/// The spec's ordinary lists: limit 1..=100, default 20, with `before`.
pub(crate) const STANDARD: ListSpec = ListSpec {
    default_limit: 20,
    max_limit: 100,
    allows_before: true,
};
/// `GET /files`: limit 1..=10,000, default 10,000, no `before`.
pub(crate) const FILES: ListSpec = ListSpec {
    default_limit: 10_000,
    max_limit: 10_000,
    allows_before: false,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListQuery {
    pub limit: usize,
    pub order: Order,
    pub after: Option<String>,
    pub before: Option<String>,
}

/// The value of query parameter `name` (the last one if repeated).
pub(crate) fn param<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

impl ListQuery {
    /// Reads `limit`, `order`, `after` and `before`; other parameters are ignored. Empty cursor
    /// values count as absent.
    pub fn parse(query: &[(String, String)], spec: ListSpec) -> Result<Self, ApiError> {
        let limit = match param(query, "limit") {
            None => spec.default_limit,
            Some(raw) => {
                let n: i64 = raw.trim().parse().map_err(|_| {
                    ApiError::invalid(format!(
                        "Invalid 'limit': expected an integer, but got '{raw}' instead."
                    ))
                    .param("limit")
                    .code("invalid_type")
                })?;
                if n < 1 {
                    return Err(ApiError::invalid(format!(
                        "Invalid 'limit': integer below minimum value. Expected a value >= 1, but got {n} instead."
                    ))
                    .param("limit")
                    .code("integer_below_min_value"));
                }
                if n as u64 > spec.max_limit {
                    return Err(ApiError::invalid(format!(
                        "Invalid 'limit': integer above maximum value. Expected a value <= {}, but got {n} instead.",
                        spec.max_limit
                    ))
                    .param("limit")
                    .code("integer_above_max_value"));
                }
                n as u64
            }
        };
        let order = match param(query, "order") {
            None | Some("desc") => Order::Desc,
            Some("asc") => Order::Asc,
            Some(other) => {
                return Err(ApiError::invalid(format!(
                    "Invalid value: '{other}'. Supported values are: 'asc' and 'desc'."
                ))
                .param("order")
                .code("invalid_value"));
            }
        };
        let cursor = |name| {
            param(query, name)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let before = cursor("before");
        if before.is_some() && !spec.allows_before {
            return Err(ApiError::invalid("Unknown parameter: 'before'.")
                .param("before")
                .code("unknown_parameter"));
        }
        Ok(ListQuery {
            limit: limit as usize,
            order,
            after: cursor("after"),
            before,
        })
    }
}

/// Renders one page of `coll`, keeping only items for which `keep` holds.
pub(crate) fn page(
    coll: &Collection,
    q: &ListQuery,
    keep: impl Fn(&Item) -> bool,
) -> Result<String, ApiError> {
    let n = coll.items.len();
    // Rank = position in the requested order.
    let at_rank = |r: usize| match q.order {
        Order::Asc => &coll.items[r],
        Order::Desc => &coll.items[n - 1 - r],
    };
    let rank_of = |name: &str, id: &str| -> Result<usize, ApiError> {
        let pos = *coll.index.get(id).ok_or_else(|| {
            ApiError::invalid(format!(
                "Invalid '{name}': '{id}' is not the id of an object in this list."
            ))
            .param(name)
            .code("invalid_value")
        })?;
        Ok(match q.order {
            Order::Asc => pos,
            Order::Desc => n - 1 - pos,
        })
    };
    let lo = match &q.after {
        Some(id) => rank_of("after", id)? + 1,
        None => 0,
    };
    let hi = match &q.before {
        Some(id) => rank_of("before", id)?,
        None => n,
    };
    let wanted = q.limit + 1;
    let mut picked: Vec<&Item> = Vec::with_capacity(wanted.min(n));
    if q.before.is_some() {
        // Walk back from the `before` cursor, then restore the requested order.
        picked.extend(
            (lo..hi.max(lo))
                .rev()
                .map(at_rank)
                .filter(|i| keep(i))
                .take(wanted),
        );
    } else {
        picked.extend(
            (lo..hi.max(lo))
                .map(at_rank)
                .filter(|i| keep(i))
                .take(wanted),
        );
    }
    let has_more = picked.len() > q.limit;
    picked.truncate(q.limit);
    if q.before.is_some() {
        picked.reverse();
    }
    Ok(render(&picked, has_more))
}

fn render(items: &[&Item], has_more: bool) -> String {
    let id_json = |i: Option<&&Item>| i.map_or_else(|| "null".to_string(), |i| json_string(&i.id));
    let body_len: usize = items.iter().map(|i| i.json.len() + 1).sum();
    let mut out = String::with_capacity(body_len + 128);
    out.push_str(r#"{"object":"list","data":["#);
    for (k, item) in items.iter().enumerate() {
        if k > 0 {
            out.push(',');
        }
        out.push_str(&item.json);
    }
    out.push_str(&format!(
        r#"],"first_id":{},"last_id":{},"has_more":{has_more}}}"#,
        id_json(items.first()),
        id_json(items.last())
    ));
    out
}

/// `s` as a JSON string literal.
pub(crate) fn json_string(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn coll(n: usize) -> Collection {
        // Pairs share a timestamp so ties must keep insertion order.
        let items = (0..n)
            .map(|k| Item {
                id: format!("m{k}"),
                created_at: (k / 2) as i64,
                json: format!(r#"{{"id":"m{k}"}}"#),
                tag: Some(if k % 3 == 0 { "x" } else { "y" }.to_string()),
            })
            .collect();
        Collection::new(items).unwrap()
    }

    fn ids(page: &str) -> (Vec<String>, bool, Value, Value) {
        let v: Value = serde_json::from_str(page).unwrap();
        let ids = v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].as_str().unwrap().to_string())
            .collect();
        (
            ids,
            v["has_more"].as_bool().unwrap(),
            v["first_id"].clone(),
            v["last_id"].clone(),
        )
    }

    fn q(limit: usize, order: Order, after: Option<&str>, before: Option<&str>) -> ListQuery {
        ListQuery {
            limit,
            order,
            after: after.map(Into::into),
            before: before.map(Into::into),
        }
    }

    #[test]
    fn pages_forward_and_backward_in_both_orders() {
        let c = coll(7);
        let all = |_: &Item| true;
        let (got, more, first, last) = ids(&page(&c, &q(3, Order::Asc, None, None), all).unwrap());
        assert_eq!(
            (got, more, first, last),
            (
                vec!["m0".into(), "m1".into(), "m2".into()],
                true,
                "m0".into(),
                "m2".into()
            )
        );
        let (got, more, ..) = ids(&page(&c, &q(3, Order::Asc, Some("m5"), None), all).unwrap());
        assert_eq!((got, more), (vec!["m6".to_string()], false));
        let (got, more, ..) = ids(&page(&c, &q(2, Order::Desc, Some("m4"), None), all).unwrap());
        assert_eq!(
            (got, more),
            (vec!["m3".to_string(), "m2".to_string()], true)
        );
        let (got, more, ..) = ids(&page(&c, &q(2, Order::Asc, None, Some("m4")), all).unwrap());
        assert_eq!(
            (got, more),
            (vec!["m2".to_string(), "m3".to_string()], true)
        );
        let (got, more, ..) = ids(&page(&c, &q(5, Order::Desc, None, Some("m4")), all).unwrap());
        assert_eq!(
            (got, more),
            (vec!["m6".to_string(), "m5".to_string()], false)
        );
        let (got, more, first, last) =
            ids(&page(&c, &q(5, Order::Desc, Some("m0"), None), all).unwrap());
        assert_eq!(
            (got.len(), more, first, last),
            (0, false, Value::Null, Value::Null)
        );
    }

    #[test]
    fn filters_apply_before_limit_and_cursor_may_be_filtered_out() {
        let c = coll(10);
        let xs = |i: &Item| i.tag.as_deref() == Some("x");
        let (got, more, ..) = ids(&page(&c, &q(2, Order::Asc, Some("m1"), None), xs).unwrap());
        assert_eq!(
            (got, more),
            (vec!["m3".to_string(), "m6".to_string()], true)
        );
    }

    #[test]
    fn rejects_bad_params() {
        let p = |pairs: &[(&str, &str)], spec| {
            let owned: Vec<(String, String)> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            ListQuery::parse(&owned, spec)
        };
        assert_eq!(p(&[], STANDARD).unwrap(), q(20, Order::Desc, None, None));
        assert_eq!(p(&[], FILES).unwrap().limit, 10_000);
        assert_eq!(
            p(&[("limit", "0")], STANDARD).unwrap_err().code,
            Some("integer_below_min_value")
        );
        assert_eq!(
            p(&[("limit", "101")], STANDARD).unwrap_err().code,
            Some("integer_above_max_value")
        );
        assert_eq!(p(&[("limit", "10000")], FILES).unwrap().limit, 10_000);
        assert_eq!(
            p(&[("limit", "x")], STANDARD).unwrap_err().param.as_deref(),
            Some("limit")
        );
        assert_eq!(
            p(&[("order", "up")], STANDARD)
                .unwrap_err()
                .param
                .as_deref(),
            Some("order")
        );
        assert_eq!(
            p(&[("before", "file-1")], FILES).unwrap_err().code,
            Some("unknown_parameter")
        );
        let err = page(&coll(3), &q(2, Order::Asc, Some("nope"), None), |_| true).unwrap_err();
        assert_eq!(
            (err.status.as_u16(), err.param.as_deref()),
            (400, Some("after"))
        );
    }
}
