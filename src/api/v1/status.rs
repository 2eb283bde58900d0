//! The status every Gateway API policy carries: one entry per ancestor and
//! controller.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use super::ParentReference;
use crate::api::pattern;

/// The status of a policy, written by the controllers that implement it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PolicyStatus {
    /// One entry for each ancestor (usually a Gateway) and controller that
    /// the policy is relevant to. Each controller owns the entries that carry
    /// its `controllerName` and leaves the others alone. At most 16 entries.
    #[schemars(length(max = 16))]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub ancestors: Vec<PolicyAncestorStatus>,
}

/// The status of a policy with respect to one ancestor, as seen by one
/// controller.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyAncestorStatus {
    /// The ancestor this entry is about, usually the Gateway that routes
    /// traffic to the policy's target.
    pub ancestor_ref: ParentReference,

    /// The controller that wrote this entry, as a domain-prefixed path such
    /// as `example.net/gateway-controller`.
    #[schemars(length(min = 1, max = 253), pattern(pattern::CONTROLLER_NAME))]
    pub controller_name: String,

    /// The state of the policy for this ancestor, at most one condition of
    /// each type (for example `Accepted` and `ResolvedRefs`).
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
}

/// The schema the API server enforces for `metav1.Condition` lists.
///
/// k8s-openapi's own `Condition` schema lacks the limits and patterns, so it
/// is spelled out here; the Rust type stays k8s-openapi's.
fn conditions_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "minItems": 1,
        "maxItems": 8,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
        "items": {
            "type": "object",
            "description": "One aspect of the current state of an object.",
            "required": ["lastTransitionTime", "message", "reason", "status", "type"],
            "properties": {
                "lastTransitionTime": {
                    "description": "When the condition last changed from one status to another.",
                    "type": "string",
                    "format": "date-time",
                },
                "message": {
                    "description": "Human-readable details about the transition.",
                    "type": "string",
                    "maxLength": 32768,
                },
                "observedGeneration": {
                    "description": "The metadata.generation of the object the condition was computed from.",
                    "type": "integer",
                    "format": "int64",
                    "minimum": 0,
                },
                "reason": {
                    "description": "A CamelCase word that says why the condition has its status.",
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 1024,
                    "pattern": pattern::CONDITION_REASON,
                },
                "status": {
                    "description": "True, False or Unknown.",
                    "type": "string",
                    "enum": ["True", "False", "Unknown"],
                },
                "type": {
                    "description": "The kind of condition, in CamelCase or as domain/Name.",
                    "type": "string",
                    "maxLength": 316,
                    "pattern": pattern::CONDITION_TYPE,
                },
            },
        },
    })
}
