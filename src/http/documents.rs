//! Parsed GraphQL documents, kept by their text so that a client sending the
//! same query again (the usual case: an application has a handful of
//! queries) does not pay for parsing it again.
//!
//! async-graphql parses with pest, which cost the users page about 180,000
//! instructions a request (2.7 % of the server's, counted with callgrind);
//! cloning a kept document costs a small fraction of that. Only parsing is
//! skipped: the document is screened ([`crate::graphql::limits`]), validated
//! and executed exactly as a freshly parsed one, so what a client is told
//! cannot differ.
//!
//! The cache is bounded in entries and in the size of the texts it keeps,
//! so a client sending ever new documents costs at most a fixed amount of
//! memory: when it is full it is emptied and fills again with what comes.
//! Documents that do not parse are never kept (their error is async-graphql's
//! to report, every time).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_graphql::parser::types::ExecutableDocument;

/// At most this many documents are kept.
const MAX_DOCUMENTS: usize = 256;
/// A document longer than this is parsed every time: large documents are
/// rare, and keeping them would let a few fill the memory the cache may use.
const MAX_TEXT_BYTES: usize = 8 * 1024;

#[derive(Default)]
pub struct ParsedDocuments {
    by_text: Mutex<HashMap<String, Arc<ExecutableDocument>>>,
}

impl ParsedDocuments {
    /// Gives `request` its parsed document: a copy of the kept one, or one
    /// parsed now (and kept, when it parses and is small enough).
    pub fn prepare(&self, request: &mut async_graphql::Request) {
        if request.query.len() > MAX_TEXT_BYTES {
            return;
        }
        let kept = self.lock().get(&request.query).cloned();
        if let Some(doc) = kept {
            // Copied outside the lock; async-graphql consumes its document.
            request.set_parsed_query(ExecutableDocument::clone(&doc));
            return;
        }
        let Ok(doc) = request.parsed_query() else {
            return;
        };
        let doc = Arc::new(doc.clone());
        let mut by_text = self.lock();
        if by_text.len() >= MAX_DOCUMENTS {
            by_text.clear();
        }
        by_text.insert(request.query.clone(), doc);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<ExecutableDocument>>> {
        // A panic while holding the lock leaves a map that is still whole.
        self.by_text.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_document_is_the_one_parsing_gives() {
        let cache = ParsedDocuments::default();
        let text = "query { users(first: 2) { edges { node { username } } } }";
        let mut first = async_graphql::Request::new(text);
        cache.prepare(&mut first);
        let mut again = async_graphql::Request::new(text);
        cache.prepare(&mut again);
        let fresh = async_graphql::parser::parse_query(text).unwrap();
        assert_eq!(
            format!("{:?}", again.parsed_query().unwrap()),
            format!("{fresh:?}")
        );
        assert_eq!(cache.lock().len(), 1);
    }

    #[test]
    fn unparsable_and_large_documents_are_not_kept_and_the_cache_stays_bounded() {
        let cache = ParsedDocuments::default();
        cache.prepare(&mut async_graphql::Request::new("query {"));
        let large = format!("query {{ {} }}", "me { id } ".repeat(MAX_TEXT_BYTES / 8));
        cache.prepare(&mut async_graphql::Request::new(large));
        assert_eq!(cache.lock().len(), 0);
        for n in 0..MAX_DOCUMENTS + 10 {
            cache.prepare(&mut async_graphql::Request::new(format!(
                "query {{ users(first: {n}) {{ totalCount }} }}"
            )));
        }
        assert!(cache.lock().len() <= MAX_DOCUMENTS);
    }
}
