"""PostHog's vocabulary, written down once: event names per scope kind and content keys.

Imports nothing: every layer may read it.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "ANNOTATION_CONTENT",
    "CONTENT_KEYS",
    "CUT_INPUT",
    "CUT_KEYS",
    "CUT_OUTPUT",
    "CUT_TOOLS",
    "CUT_YIELDED",
    "EVENT_KINDS",
    "PRIVATE_CONTENT",
    "TREE_EVENTS",
    "WRAPPER_CONTENT",
]

#: The kind shown for each event in trees (``hogtrace.testing`` and the console).
EVENT_KINDS: Final = {
    "$ai_trace": "trace",
    "$ai_span": "span",
    "$ai_generation": "generation",
    "$ai_embedding": "embedding",
    "$ai_metric": "metric",
    "$ai_feedback": "feedback",
}
#: Events that are nodes of PostHog's trace tree (metrics and feedback are annotations).
TREE_EVENTS: Final = frozenset({"$ai_generation", "$ai_embedding", "$ai_span", "$ai_trace"})
#: Properties that hold user content: redacted, nulled under privacy mode, truncated to fit.
CONTENT_KEYS: Final = frozenset(
    {
        "$ai_input",
        "$ai_output_choices",
        "$ai_input_state",
        "$ai_output_state",
        "$ai_error",
        "$ai_tools",
    }
)
#: Content sent as ``null`` under privacy mode.
PRIVATE_CONTENT: Final = (
    "$ai_input",
    "$ai_output_choices",
    "$ai_input_state",
    "$ai_output_state",
)
#: What PostHog's own wrappers send as content; nulled under hogtrace's privacy mode too.
WRAPPER_CONTENT: Final = (*PRIVATE_CONTENT, "$ai_instructions", "$ai_trace_metadata")
# The content a snapshot cut at ``max_items`` (bits of a scope's ``cut``): ``$ai_truncated``
# says so when that content is sent (not replaced, not left out on an error or for privacy).
CUT_INPUT: Final = 1
CUT_OUTPUT: Final = 2
CUT_TOOLS: Final = 4
#: A generator's yielded items, its output only if nothing replaces them when it ends.
CUT_YIELDED: Final = 8
#: The properties each part is sent as.
CUT_KEYS: Final = (
    (CUT_INPUT, ("$ai_input", "$ai_input_state")),
    (CUT_OUTPUT, ("$ai_output_choices", "$ai_output_state")),
    (CUT_TOOLS, ("$ai_tools",)),
)
#: What may be cut to fit the size limit on ``$ai_metric`` / ``$ai_feedback``.
ANNOTATION_CONTENT: Final = frozenset({"$ai_feedback_text", "$ai_metric_value"})
