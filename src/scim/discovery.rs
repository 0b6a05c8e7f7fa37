//! The discovery endpoints (RFC 7644 §4): what memberdesk's SCIM service
//! supports, which resource types it serves and their schemas, so a client
//! (or a conformance tester) can find out instead of being configured by
//! hand. The schemas list only what memberdesk keeps; an attribute it would
//! drop is not advertised.

use serde_json::{Value, json};

use super::resources::{GROUP_SCHEMA, LIST_SCHEMA, USER_SCHEMA};

const SPC_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
const RESOURCE_TYPE_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
const SCHEMA_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";

/// The most resources one list response holds (`filter.maxResults`).
pub const MAX_RESULTS: i64 = 1000;

pub fn service_provider_config(base: &str) -> Value {
    json!({
        "schemas": [SPC_SCHEMA],
        "patch": { "supported": true },
        "bulk": { "supported": false, "maxOperations": 0, "maxPayloadSize": 0 },
        "filter": { "supported": true, "maxResults": MAX_RESULTS },
        "changePassword": { "supported": false },
        "sort": { "supported": false },
        "etag": { "supported": true },
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "Bearer token",
            "description": "A token made by `memberdesk scim-token create`, sent as 'Authorization: Bearer <token>'",
            "primary": true,
        }],
        "meta": { "resourceType": "ServiceProviderConfig", "location": format!("{base}/ServiceProviderConfig") },
    })
}

fn resource_type(base: &str, name: &str, endpoint: &str, schema: &str) -> Value {
    json!({
        "schemas": [RESOURCE_TYPE_SCHEMA],
        "id": name,
        "name": name,
        "endpoint": endpoint,
        "description": name,
        "schema": schema,
        "schemaExtensions": [],
        "meta": { "resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/{name}") },
    })
}

pub fn resource_types(base: &str) -> Vec<Value> {
    vec![
        resource_type(base, "User", "/Users", USER_SCHEMA),
        resource_type(base, "Group", "/Groups", GROUP_SCHEMA),
    ]
}

/// One attribute definition (RFC 7643 §7).
struct Attr {
    name: &'static str,
    kind: &'static str,
    multi: bool,
    required: bool,
    mutability: &'static str,
    uniqueness: &'static str,
    subs: Vec<Attr>,
}

fn attr(name: &'static str, kind: &'static str) -> Attr {
    Attr {
        name,
        kind,
        multi: false,
        required: false,
        mutability: "readWrite",
        uniqueness: "none",
        subs: Vec::new(),
    }
}

impl Attr {
    fn multi(self) -> Attr {
        Attr {
            multi: true,
            ..self
        }
    }
    fn required(self) -> Attr {
        Attr {
            required: true,
            ..self
        }
    }
    fn read_only(self) -> Attr {
        Attr {
            mutability: "readOnly",
            ..self
        }
    }
    fn unique(self) -> Attr {
        Attr {
            uniqueness: "server",
            ..self
        }
    }
    fn with(self, subs: Vec<Attr>) -> Attr {
        Attr { subs, ..self }
    }

    fn to_json(&self) -> Value {
        let returned = "default";
        let mut out = json!({
            "name": self.name,
            "type": self.kind,
            "multiValued": self.multi,
            "description": self.name,
            "required": self.required,
            "mutability": self.mutability,
            "returned": returned,
            "uniqueness": self.uniqueness,
        });
        if matches!(self.kind, "string" | "reference") {
            out["caseExact"] = json!(false);
        }
        if self.kind == "reference" {
            out["referenceTypes"] = json!(["User", "Group"]);
        }
        if !self.subs.is_empty() {
            out["subAttributes"] = Value::Array(self.subs.iter().map(Attr::to_json).collect());
        }
        out
    }
}

fn schema(base: &str, id: &str, name: &str, attributes: Vec<Attr>) -> Value {
    json!({
        "schemas": [SCHEMA_SCHEMA],
        "id": id,
        "name": name,
        "description": name,
        "attributes": attributes.iter().map(Attr::to_json).collect::<Vec<_>>(),
        "meta": { "resourceType": "Schema", "location": format!("{base}/Schemas/{id}") },
    })
}

pub fn schemas(base: &str) -> Vec<Value> {
    let user = vec![
        attr("userName", "string").required().unique(),
        attr("name", "complex").with(vec![
            attr("givenName", "string"),
            attr("familyName", "string"),
        ]),
        attr("displayName", "string").read_only(),
        attr("active", "boolean").required(),
        attr("emails", "complex")
            .multi()
            .with(vec![attr("value", "string")]),
        attr("groups", "complex").multi().read_only().with(vec![
            attr("value", "string").read_only(),
            attr("$ref", "reference").read_only(),
            attr("display", "string").read_only(),
            attr("type", "string").read_only(),
        ]),
    ];
    let group = vec![
        attr("displayName", "string").required().unique(),
        attr("members", "complex")
            .multi()
            .with(vec![attr("value", "string"), attr("$ref", "reference")]),
    ];
    vec![
        schema(base, USER_SCHEMA, "User", user),
        schema(base, GROUP_SCHEMA, "Group", group),
    ]
}

/// A ListResponse of all of `resources` (discovery lists are short).
pub fn list(resources: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_SCHEMA],
        "totalResults": resources.len(),
        "startIndex": 1,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}
