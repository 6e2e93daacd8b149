"""The names Limen gives to what it keeps in an Optuna study: one place for every key.

Study user attrs describe the experiment (what resume, the readers and the dashboard need);
trial user and system attrs describe a round. Every module reads and writes them through these
names, so a key is spelled once.
"""

from __future__ import annotations

__all__ = [
    "ACCEPTANCE",
    "ATTEMPT",
    "CODEC",
    "CONTEXT_PARAMS",
    "CONVERGENCE_WARNING",
    "DATA_FINGERPRINT",
    "ERROR_MESSAGE",
    "ERROR_TYPE",
    "EXECUTION_TIME",
    "FEEDBACK",
    "FEEDBACK_STATE",
    "FOLDS",
    "FOREIGN",
    "INJECTED",
    "NAMESPACE",
    "N_PERMUTATIONS",
    "OBJECTIVE",
    "OWNER",
    "PRIORITY",
    "PRUNED",
    "PRUNER",
    "REFUSED",
    "RETRY_OF",
    "ROUND_ID",
    "ROUND_INDEX",
    "SEARCH_STATE",
    "SEQUENCE_PREFIX",
    "SFD_MODULE",
    "SFD_SOURCE_HASH",
    "SPACE_HASH",
    "STATE",
    "STRATEGY",
    "TEST_MODE",
    "TRACEBACK",
    "VERSION",
    "WARNINGS",
]

#: Every key Limen writes starts with this; others (metrics, Optuna's own) never do.
NAMESPACE = "limen:"

# Study user attrs: the experiment.
SFD_MODULE = NAMESPACE + "sfd_module"
SFD_SOURCE_HASH = NAMESPACE + "sfd_source_hash"
DATA_FINGERPRINT = NAMESPACE + "data_fingerprint"
VERSION = NAMESPACE + "version"
SPACE_HASH = NAMESPACE + "space_hash"
STRATEGY = NAMESPACE + "strategy"
PRUNER = NAMESPACE + "pruner"
OBJECTIVE = NAMESPACE + "objective"
CODEC = NAMESPACE + "codec"
CONTEXT_PARAMS = NAMESPACE + "context_params"
N_PERMUTATIONS = NAMESPACE + "n_permutations"
TEST_MODE = NAMESPACE + "test_mode"
FEEDBACK = NAMESPACE + "feedback"
FEEDBACK_STATE = NAMESPACE + "feedback_state"
SEARCH_STATE = NAMESPACE + "search_state"
ACCEPTANCE = NAMESPACE + "acceptance"

# Study system attrs: study-wide counters (``limen:seq:<name>``).
SEQUENCE_PREFIX = NAMESPACE + "seq:"

# Trial user attrs: a round.
ATTEMPT = NAMESPACE + "attempt"
INJECTED = NAMESPACE + "injected"
PRIORITY = NAMESPACE + "priority"
REFUSED = NAMESPACE + "refused"
PRUNED = NAMESPACE + "pruned"
FOLDS = NAMESPACE + "folds"

# Trial system attrs: who runs a round, and which attempt a retry repeats.
OWNER = NAMESPACE + "owner"
RETRY_OF = NAMESPACE + "retry_of"

# Trial user attrs a round shows under plain names, which are also columns of results.csv and
# of the experiment log (with the trial number, state and the foreign flag): no parameter or
# metric may take these names.
ROUND_ID = "id"
ROUND_INDEX = "_round_index"
STATE = "state"
FOREIGN = "foreign"
EXECUTION_TIME = "execution_time"
ERROR_TYPE = "error_type"
ERROR_MESSAGE = "error_message"
TRACEBACK = "traceback"
WARNINGS = "_warnings"
CONVERGENCE_WARNING = "_convergence_warning"
