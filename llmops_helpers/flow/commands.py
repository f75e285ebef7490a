"""The ``llmops`` commands of this stage: train-intents."""

from __future__ import annotations

import argparse
import time


def cmd_train_intents(args: argparse.Namespace) -> int:
    from llmops_helpers.flow.intent import train_from_file

    started = time.perf_counter()
    path, model = train_from_file(args.data, args.out)
    trained = model["trained_on"]
    counts = ", ".join(f"{intent} {n}" for intent, n in trained["per_intent"].items())
    print(f"Trained the classic intent model on {trained['examples']} examples ({counts}) in "
          f"{time.perf_counter() - started:.1f} s: {len(model['vocabulary'])} terms, scikit-learn {model['sklearn']}.")
    print(f"  wrote {path}\n  use it with intent_classifier: classic in the flow's config.yaml")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train-intents", help="train the app's classic intent classifier (TF-IDF + logistic regression)")
    p.add_argument("--data", help="labelled examples, JSONL with text and intent (default: data/intents/train.jsonl)")
    p.add_argument("--out", help="model file (default: flows/support_agent/intent_model.json)")
    p.set_defaults(func=cmd_train_intents)
