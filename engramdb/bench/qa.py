"""Optional end-to-end QA: answer from ``Memory.context()`` with an LLM, then judge the answer.

Judge prompts follow LongMemEval's (per question type, abstention included) and the LoCoMo
LLM-as-judge convention (generous on wording and date formats).
"""

from __future__ import annotations

import re
from typing import Any, Protocol

BUDGET = 2000

ANSWER_SYSTEM = (
    "You answer questions about a user's past conversations using only the memories given. "
    "Dates in brackets are when each message was said. If the memories do not contain the "
    "answer, say that you don't know. Answer briefly."
)

_LME_BASE = (
    "I will give you a question, a correct answer, and a response from a model. Please answer yes if the "
    "response contains the correct answer. Otherwise, answer no. If the response is equivalent to the correct "
    "answer or contains all the intermediate steps to get the correct answer, you should also answer yes. If the "
    "response only contains a subset of the information required by the answer, answer no. {extra}\n\n"
    "Question: {question}\n\nCorrect Answer: {answer}\n\nModel Response: {response}\n\n"
    "Is the model response correct? Answer yes or no only."
)
_LME_EXTRA = {
    "temporal-reasoning": "In addition, do not penalize off-by-one errors for the number of days. If the question "
    "asks for the number of days/weeks/months, etc., and the model makes off-by-one errors (e.g., predicting 19 "
    "days when the answer is 18), the model's response is still correct.",
    "knowledge-update": "If the response contains some previous information along with an updated answer, the "
    "response should be considered as correct as long as the updated answer is the required answer.",
}
_LME_PREFERENCE = (
    "I will give you a question, a rubric for desired personalized response, and a response from a model. Please "
    "answer yes if the response satisfies the desired response. Otherwise, answer no. The model does not need to "
    "reflect all the points in the rubric. The response is correct as long as it recalls and utilizes the user's "
    "personal information correctly.\n\nQuestion: {question}\n\nRubric: {answer}\n\nModel Response: {response}\n\n"
    "Is the model response correct? Answer yes or no only."
)
_LME_ABSTENTION = (
    "I will give you an unanswerable question, an explanation, and a response from a model. Please answer yes if "
    "the model correctly identifies the question as unanswerable. The model could say that the information is "
    "incomplete, or some other information is given but the asked information is not.\n\nQuestion: {question}\n\n"
    "Explanation: {answer}\n\nModel Response: {response}\n\nDoes the model correctly identify the question as "
    "unanswerable? Answer yes or no only."
)
_LOCOMO = (
    "Label an answer to a question as CORRECT or WRONG. You get (1) a question asked about a conversation, "
    "(2) a gold answer, (3) a generated answer. Be generous: if the generated answer touches on the same topic "
    "and facts as the gold answer, it is CORRECT. For time questions the generated answer may use another format "
    "or relative wording; it is CORRECT if it refers to the same date or period.\n\nQuestion: {question}\n"
    "Gold answer: {answer}\nGenerated answer: {response}\n\nReply with one word: CORRECT or WRONG."
)


class Chat(Protocol):
    def chat(self, messages: list[dict[str, str]], *, temperature: float = 0.0, max_tokens: int = 256) -> str: ...


def judge_prompt(dataset: str, category: str, abstention: bool, question: str, answer: str, response: str) -> str:
    fields = {"question": question, "answer": answer, "response": response}
    if dataset == "longmemeval":
        if abstention:
            return _LME_ABSTENTION.format(**fields)
        if category == "single-session-preference":
            return _LME_PREFERENCE.format(**fields)
        return _LME_BASE.format(extra=_LME_EXTRA.get(category, ""), **fields)
    return _LOCOMO.format(**fields)


_VERDICT_WORD = re.compile(r"\b(yes|no|correct|incorrect|wrong)\b")


def parse_verdict(text: str) -> bool:
    """Read a judge's reply: the first verdict word decides ("No, the response is not correct."
    is a no). Only a clear yes/correct counts as correct; no verdict word is a no."""
    t = text.strip().lower()
    m = _VERDICT_WORD.search(t)
    if m is None:
        return False
    if m.group(1) in ("yes", "correct"):
        # "correct" in "not correct" is preceded by a negation
        return not (m.group(1) == "correct" and re.search(r"\b(not|isn't)\s*$", t[: m.start()]))
    return False


def answer_and_judge(llm: Chat, dataset: str, q: dict[str, Any], context: str, asked_at: str | None) -> dict[str, Any]:
    when = f"The question is asked on {asked_at}.\n" if asked_at else ""
    response = llm.chat(
        [
            {"role": "system", "content": ANSWER_SYSTEM},
            {"role": "user", "content": f"{context or '(no memories)'}\n\n{when}Question: {q['question']}"},
        ]
    )
    verdict = llm.chat(
        [{"role": "user", "content": judge_prompt(dataset, q["category"], q["abstention"], q["question"], q["answer"], response)}],
        max_tokens=10,
    )
    return {"response": response, "verdict": verdict, "correct": parse_verdict(verdict)}
