"""Policy-based access control for the gateway: Cedar policy sets, agreements, decisions.

Pure library (no web framework, no gateway imports). The node loads a `PolicyEngine` at start-up
(loading raises `PolicyLoadError`: an invalid policy set stops the node), decides each answer
through a per-request `DecisionCache`, and turns records into what the caller may see with
`apply_decision`. `check_policy_dir`, `run_policy_tests` and `explain` back the
`gateway policy` commands.
"""

from policies._disclosure import WITHHELD_KEY, apply_decision, postcode_district
from policies._engine import AgreementFit, DecisionCache, PolicyEngine, ReloadResult
from policies._loading import (
    DEFAULT_BASE_DIR,
    DEFAULT_SCHEMA_PATH,
    PACKAGE_DIR,
    AgreementMetadata,
    LoadedPolicySet,
    PolicyLoadError,
    load_policy_set,
)
from policies._model import (
    ALL_ACTIONS,
    KNOWN_OBLIGATIONS,
    POLICY_FIELD_GROUPS,
    Decision,
    GroupFate,
    Mode,
    Obligation,
    Outcome,
    PolicyContext,
    PolicyInputError,
    Principal,
    RecordAttributes,
    context_from_mapping,
    principal_from_mapping,
    record_attributes_from_json,
    record_from_mapping,
)
from policies._tools import (
    AgreementSummary,
    CaseResult,
    CheckReport,
    Explanation,
    PolicyTestReport,
    check_policy_dir,
    explain,
    run_policy_tests,
)

# The example policy directory shipped with the package (demo federation 05, 20, 01).
EXAMPLE_POLICY_DIR = PACKAGE_DIR

__all__ = [
    "ALL_ACTIONS",
    "DEFAULT_BASE_DIR",
    "DEFAULT_SCHEMA_PATH",
    "EXAMPLE_POLICY_DIR",
    "KNOWN_OBLIGATIONS",
    "POLICY_FIELD_GROUPS",
    "WITHHELD_KEY",
    "AgreementFit",
    "AgreementMetadata",
    "AgreementSummary",
    "CaseResult",
    "CheckReport",
    "Decision",
    "DecisionCache",
    "Explanation",
    "GroupFate",
    "LoadedPolicySet",
    "Mode",
    "Obligation",
    "Outcome",
    "PolicyContext",
    "PolicyEngine",
    "PolicyInputError",
    "PolicyLoadError",
    "PolicyTestReport",
    "Principal",
    "RecordAttributes",
    "ReloadResult",
    "apply_decision",
    "check_policy_dir",
    "context_from_mapping",
    "explain",
    "load_policy_set",
    "postcode_district",
    "principal_from_mapping",
    "record_attributes_from_json",
    "record_from_mapping",
    "run_policy_tests",
]
