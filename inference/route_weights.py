"""The shipped escalation-score models, fitted by ``python -m app.fit_routing`` (see its docstring for the two
``ember bench routing --dump`` runs it reads) on the *train* split of ``app/resources/routing_questions.jsonl``
with the starter model as the small tier (greedy answers). ``ember bench routing --fit`` runs the same fit on one
run's train items and reports with it, without changing this file.

Refit after changing the signals; report figures only on the ``test`` split, which these numbers never saw.
"""

from __future__ import annotations

from inference.router import ScoreModel

PROMPT_FEATURES = ["log_words", "code", "math", "numbers", "multi_step", "units", "wordplay", "fact", "how_many",
                   "yes_no", "non_ascii", "lines"]
# The bounded probabilities beat the log-probabilities and the six collinear glimpse statistics in 5-fold
# cross-validation on train (log-probabilities have long tails that a logistic score over-weights).
GLIMPSE_FEATURES = ["glimpse_prob_first", "glimpse_prob_min", "glimpse_entropy_mean"]
ANSWER_FEATURES = ["answer_entropy_mean", "answer_entropy_max", "answer_logprob_mean", "answer_logprob_min",
                   "answer_margin_min", "answer_tokens"]

AUTO_FEATURES = PROMPT_FEATURES + GLIMPSE_FEATURES
CASCADE_FEATURES = PROMPT_FEATURES + GLIMPSE_FEATURES + ANSWER_FEATURES

# Fitted by `python -m app.fit_routing train_t1.jsonl train_t2.jsonl` on the train split (266 items, each answered
# with --threads 1 and --threads 2: 532 rows); L2 strength chosen by 5-fold cross-validation inside train.
# l2=1.0
AUTO_MODEL = ScoreModel(
    bias=0.5439,
    weights={'log_words': 0.5507,
             'code': 0.0,
             'math': 0.5651,
             'numbers': 0.4,
             'multi_step': 0.9242,
             'units': 0.097,
             'wordplay': 0.2098,
             'fact': 0.0705,
             'how_many': 0.09,
             'yes_no': -0.512,
             'non_ascii': 0.0,
             'lines': -0.0,
             'glimpse_prob_first': -0.7143,
             'glimpse_prob_min': 1.1876,
             'glimpse_entropy_mean': 0.9909},
    centre={'log_words': 2.0806,
            'code': 0.0,
            'math': 0.1767,
            'numbers': 0.1494,
            'multi_step': 0.0564,
            'units': 0.1805,
            'wordplay': 0.1241,
            'fact': 0.6053,
            'how_many': 0.2143,
            'yes_no': 0.0113,
            'non_ascii': 0.0,
            'lines': 0.05,
            'glimpse_prob_first': 0.531,
            'glimpse_prob_min': 0.4713,
            'glimpse_entropy_mean': 1.7678},
    scale={'log_words': 0.2725,
           'code': 1.0,
           'math': 0.3814,
           'numbers': 0.2433,
           'multi_step': 0.2307,
           'units': 0.3846,
           'wordplay': 0.3297,
           'fact': 0.4888,
           'how_many': 0.4103,
           'yes_no': 0.1056,
           'non_ascii': 1.0,
           'lines': 1.0,
           'glimpse_prob_first': 0.2199,
           'glimpse_prob_min': 0.2251,
           'glimpse_entropy_mean': 0.9202},
)
# l2=3.0
CASCADE_MODEL = ScoreModel(
    bias=0.4646,
    weights={'log_words': 0.6533,
             'code': 0.0,
             'math': 0.572,
             'numbers': 0.5749,
             'multi_step': 0.6621,
             'units': 0.2546,
             'wordplay': 0.2469,
             'fact': 0.4068,
             'how_many': 0.1791,
             'yes_no': -0.3698,
             'non_ascii': 0.0,
             'lines': -0.0,
             'glimpse_prob_first': -0.6042,
             'glimpse_prob_min': 1.0102,
             'glimpse_entropy_mean': 0.4713,
             'answer_entropy_mean': 0.331,
             'answer_entropy_max': 0.2215,
             'answer_logprob_mean': -0.5838,
             'answer_logprob_min': 0.1758,
             'answer_margin_min': -0.485,
             'answer_tokens': -0.2288},
    centre={'log_words': 2.0806,
            'code': 0.0,
            'math': 0.1767,
            'numbers': 0.1494,
            'multi_step': 0.0564,
            'units': 0.1805,
            'wordplay': 0.1241,
            'fact': 0.6053,
            'how_many': 0.2143,
            'yes_no': 0.0113,
            'non_ascii': 0.0,
            'lines': 0.05,
            'glimpse_prob_first': 0.531,
            'glimpse_prob_min': 0.4713,
            'glimpse_entropy_mean': 1.7678,
            'answer_entropy_mean': 1.3365,
            'answer_entropy_max': 3.5497,
            'answer_logprob_mean': -0.5247,
            'answer_logprob_min': -1.6794,
            'answer_margin_min': 0.0615,
            'answer_tokens': 3.3084},
    scale={'log_words': 0.2725,
           'code': 1.0,
           'math': 0.3814,
           'numbers': 0.2433,
           'multi_step': 0.2307,
           'units': 0.3846,
           'wordplay': 0.3297,
           'fact': 0.4888,
           'how_many': 0.4103,
           'yes_no': 0.1056,
           'non_ascii': 1.0,
           'lines': 1.0,
           'glimpse_prob_first': 0.2199,
           'glimpse_prob_min': 0.2251,
           'glimpse_entropy_mean': 0.9202,
           'answer_entropy_mean': 0.554,
           'answer_entropy_max': 1.1526,
           'answer_logprob_mean': 0.2312,
           'answer_logprob_min': 0.6119,
           'answer_margin_min': 0.1346,
           'answer_tokens': 0.6926},
)
