"""Extract facts from what people say — offline, with rules (pure; no storage).

A fact is (subject, predicate, object): "I moved to Munich" said by Ana gives
``("Ana", "lives_in", "Munich")``. Only statements count: questions, hypotheticals
("if I moved…", "I might…", "I'm thinking about…") and the assistant's messages give nothing.
Statements about people the speaker names by relation ("my sister lives in Rome") get that
person as subject ("Ana's sister"). Negations ("I don't live in Berlin anymore", "I quit my job
at Acme") come back with ``negated=True`` so consolidation can close the matching fact.

Extractors are plugins of one interface (:class:`Extractor`); :class:`RuleExtractor` is the
default, :class:`engramdb.consolidate.llm.LLMExtractor` uses an OpenAI-compatible endpoint.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from ..encode.quantity import Quantity, find_quantities
from ..encode.text import SENTENCE
from ..semantic import PREFERENCE_PREDICATES, STATEMENT, FactDraft


class Extractor(Protocol):
    """Turns one message into fact drafts. ``speaker`` is a name, or "user"."""

    name: str

    def extract(self, text: str, speaker: str, role: str | None) -> list[FactDraft]: ...


# -- rules ----------------------------------------------------------------------------------

_HYPOTHETICAL = re.compile(
    r"\b(if|would|might|(?-i:may)|maybe|perhaps|could|should|wish|wonder|considering|thinking (?:about|of)|"
    r"not sure|unless|whether|hypothetically|imagine|dream of|want to|wanna|would like to|hoping to|hope to|"
    r"(?:I|we|you|he|she|they)(?:'d|’d)\s+(?:love|like|prefer|rather))\b",
    re.I,
)
_NEG = re.compile(r"\b(don't|do not|no longer|not anymore|never|didn't|doesn't|isn't|aren't|wasn't|haven't)\b", re.I)
_RELATIONS = (
    "wife|husband|partner|girlfriend|boyfriend|fiance|fiancee|sister|brother|mom|mother|dad|father|son|daughter|"
    "friend|best friend|boss|cousin|aunt|uncle|grandma|grandmother|grandpa|grandfather|roommate|neighbor|neighbour|"
    "colleague|coworker|niece|nephew"
)
_PETS = "dog|cat|puppy|kitten|parrot|bird|rabbit|bunny|hamster|fish|turtle|horse|guinea pig|snake|lizard"
_PROFESSION = re.compile(
    r"^(?:a|an)\s+((?:[a-z]+\s){0,2}(?:teacher|nurse|engineer|developer|programmer|doctor|lawyer|student|designer|"
    r"writer|artist|accountant|manager|chef|cook|scientist|researcher|analyst|consultant|architect|pharmacist|"
    r"therapist|counselor|counsellor|photographer|musician|journalist|dentist|veterinarian|vet|pilot|"
    r"firefighter|police officer|mechanic|electrician|plumber|carpenter|librarian|professor|lecturer|"
    r"translator|editor|marketer|salesperson|cashier|barista|waiter|waitress|entrepreneur|founder|"
    r"freelancer|data scientist|software engineer|social worker|paramedic|surgeon|physician|tutor|coach))\b",
    re.I,
)
# Object phrase: up to 6 words, stopping at punctuation and clause words ("to" only after a
# gerund: "listening to podcasts", not "pottery to relax").
_OBJ_STOP = (
    r"(?:and|but|because|so|since|when|with|for|to|last|next|yesterday|today|this|these|those|lately|nowadays|now|"
    r"anymore|which|that|who|where|after|before|in|on|at)\b"
)
_OBJ_WORDS = 6
_OBJ = (
    r"(?P<obj>[A-Za-z0-9][\w'&.-]*(?:(?<=ing)\s+to(?=\s+\w)|\s+(?!" + _OBJ_STOP + r")[\w'&.-]+){0,"
    + str(_OBJ_WORDS - 1) + "})"
)
_CAP_OBJ = r"(?P<obj>(?-i:[A-Z][\w'&.-]*(?:\s+(?:[A-Z][\w'&.-]*|(?:of|de|la|von|van|the)\b)){0,4}))"


_DASH = r"\s(?:[-–—]|--)\s"  # a dash between words: a clause break, never part of a thing's name


def _clean(obj: str) -> str:
    obj = re.split(_DASH, obj, maxsplit=1)[0]  # "the Orpheus Orchestra - I've heard…"
    obj = re.sub(r"^(?:(?:also|really|just|still|even|both)\s+)+", "", obj.strip(), flags=re.I)  # "I like also X"
    obj = re.sub(r"^(?:the|a|an|my|our|some)\s+", "", obj.strip(), flags=re.I).strip(" .,'\"").rstrip(".")
    obj = re.sub(r"\s+(?:of|from|about|like|to)$", "", obj, flags=re.I)  # cut off mid-phrase: "some of"
    # trailing words that end a clause, not the thing: "my guitar a lot", "my Switch every night"
    return re.sub(r"(?:\s+(?:a lot|a bit|a|an|the|so much|again|too|very|every \w+|myself|ourselves|soon|later|as well))+$", "", obj, flags=re.I)


@dataclass(frozen=True)
class _Rule:
    pattern: re.Pattern[str]
    predicate: str
    template: str  # e.g. "{s} lives in {o}"
    negated: bool = False
    qualifier_group: str | None = None


def _r(pattern: str, predicate: str, template: str, negated: bool = False, qualifier: str | None = None) -> _Rule:
    return _Rule(re.compile(pattern, re.I), predicate, template, negated, qualifier)


_SUBJ = r"(?P<subj>I|my (?P<rel>" + _RELATIONS + r"))"
# "I have a question / a meeting / a lot of...": having that is not owning a thing.
_NOT_OWNED = (
    r"(?:(?:few|quick|little|big|hard|great|good|bad|lot|bit|couple|feeling|question|questions|problem|"
    r"problems|issue|issues|meeting|meetings|appointment|interview|exam|test|deadline|date|party|trip|"
    r"plan|plans|idea|ideas|chance|job|time|day|week|weekend|cold|flu|fever|headache|dream|favor|favour|"
    r"goal|goals|budget|friend|friends|kid|kids|child|children|baby|family|partner|wife|husband|"
    r"boyfriend|girlfriend|sister|brother|mom|dad|mother|father|son|daughter|dog|cat|puppy|kitten|"
    r"hard time|tendency|habit|list|request|presentation|project|class|lesson|course|shift|call|talk|"
    r"doubts?|concerns?|fears?|hopes?|worries|worry|reservations|suspicion|sense|way|point|right|choice|"
    r"background|very|really|pretty|so|complexion|skin|personality|voice|smile|accent|tasks?|things|errands|"
    r"tough|rough|difficult|times|moments|experiences?|luck|fun|blast|win|victory|clarity|news|story|stories|"
    r"feelings?|surge|match|matches|seasons?|sprain|injury|injuries|understanding|knowledge)\b)"
)
# A workplace: a name ("Siemens", "St. Mary's"), or "the <place>" ("the local hospital").
_PLACE_OBJ = r"(?:" + _CAP_OBJ + r"|the\s+" + _OBJ.replace("(?P<obj>", "(?P<obj2>") + r")"
_BE = r"(?:'m|’m| am|'s|’s| is| are|'re)"
# A subject, or "and" eliding it: "I moved to Munich and started a job at Siemens".
_SUBJX = r"(?:\b" + _SUBJ + r"|\band)"

_USUALLY = "{s} usually {o}"  # its object starts with a verb, told in the third person

# An amount as told: "$1,200", "about 300 dollars", "two hours", "a couple of days".
_AMT = (
    r"(?P<amt>(?:(?:about|around|roughly|over|almost|nearly|approximately|close to)\s+)?(?:[$€£¥₹]\s?[\d,.]+\d*(?:\s*(?:k|K|thousand|grand))?"
    r"|[\d,.]*\d(?:\s*(?:k|thousand|grand))?\s*(?:dollars|bucks|euros|pounds|quid|hours?|hrs|minutes|mins|days|weeks|months|years)"
    r"|(?:an?|one|two|three|four|five|six|seven|eight|nine|ten|twelve|twenty|thirty|a couple of|a few|half an?)\s+"
    r"(?:hours?|minutes?|days?|weeks?|months?|years?|nights?|dollars|bucks|euros)))"
)
_MONEY_FIRST = frozenset({"bought", "spent", "raised"})
_WHO = r"(?P<subj>I|we|our \w+|me and my \w+|my \w+ and I|my (?P<rel>" + _RELATIONS + r"))"  # who did what an amount tells

_RULES: list[_Rule] = [
    # amounts: what was spent on what, and raised for whom (the amount is read by find_quantities)
    _r(r"\b" + _WHO + r"\s+(?:(?:just|recently|also|finally|already)\s+)?(?:bought|purchased|got)\s+(?:(?:a|an|the|my|our|some|this|these)\s+)?(?:new\s+)?"
       + _OBJ + r"\s+for\s+" + _AMT, "bought", "{s} bought {o} for {a}"),
    _r(r"(?:\b" + _WHO + r"|\band)\s+(?:(?:just|recently|also)\s+)?spent\s+" + _AMT + r"\s+(?:in|at)\s+" + _CAP_OBJ, "visited", "{s} spent {a} in {o}"),
    _r(r"(?:\b" + _WHO + r"|\band)\s+(?:(?:just|recently|also|finally|already)\s+)?(?:spent|paid|dropped|invested|put)\s+" + _AMT
       + r"\s+(?:on|for|into|in|towards?)\s+(?:(?:a|an|the|my|our|some|his|her)\s+)?(?:new\s+)?" + _OBJ, "spent", "{s} spent {a} on {o}"),
    _r(r"\b" + _WHO + r"\s+(?:(?:just|recently|also|finally|already|have|'ve|’ve)\s+)*(?:raised|collected|donated|gave)\s+" + _AMT
       + r"\s+(?:for|to|at)\s+(?:(?:a|an|the|my|our|their)\s+)?" + _OBJ, "raised", "{s} raised {a} for {o}"),
    # negations first, so "I don't live in X anymore" is not read as "I live in X"
    _r(r"\b" + _SUBJ + r"\s+(?:don't|do not|doesn't|does not|no longer)\s+lives?\s+in\s+" + _CAP_OBJ, "lives_in", "{s} no longer lives in {o}", True),
    _r(r"\b" + _SUBJ + r"\s+(?:moved|moves) (?:out of|away from)\s+" + _CAP_OBJ, "lives_in", "{s} moved away from {o}", True),
    _r(r"\b" + _SUBJ + r"\s+(?:quit|left|resigned from|got laid off from|was laid off from)\s+(?:my|her|his|their) (?:job|position|role)\s+(?:at|with)\s+" + _CAP_OBJ, "works_at", "{s} no longer works at {o}", True),
    _r(r"\b" + _SUBJ + r"\s+(?:don't|do not|doesn't|does not|no longer)\s+work\s+(?:at|for)\s+" + _CAP_OBJ, "works_at", "{s} no longer works at {o}", True),
    _r(r"\b" + _SUBJ + r"\s+(?:don't|do not|doesn't|does not|no longer|never)\s+(?:really\s+)?(?:like|love|enjoy)(?:s|d|ed)?\s+" + _OBJ, "likes", "{s} no longer likes {o}", True),
    # places
    _r(_SUBJX + r"\s+(?:(?:just|recently|finally)\s+)?(?:moved|relocated)\s+(?:back\s+)?to\s+" + _CAP_OBJ, "lives_in", "{s} lives in {o}"),
    _r(r"\b" + _SUBJ + r"(?:\s+(?:still|currently|now))?\s+(?:live|lives|" + _BE.strip() + r"\s+living|(?:'ve|’ve| have|'s|’s| has) lived)\s+in\s+" + _CAP_OBJ, "lives_in", "{s} lives in {o}"),
    _r(r"\b" + _SUBJ + _BE + r"\s+(?:originally\s+)?from\s+" + _CAP_OBJ, "from", "{s} is from {o}"),
    _r(r"\b" + _SUBJ + r"\s+(?:grew up)\s+in\s+" + _CAP_OBJ, "from", "{s} grew up in {o}"),
    # work
    _r(_SUBJX + r"\s+(?:(?:just|recently)\s+)?(?:started|began)\s+(?:a new job|a job|working|work|my new job|as an? \w+)\s+(?:at|for|with)\s+" + _CAP_OBJ, "works_at", "{s} works at {o}"),
    _r(_SUBJX + r"\s+(?:(?:just|recently)\s+)?(?:got|landed|accepted)\s+(?:a|the|an)\s+(?:new\s+)?(?:(?:job|position|role)(?:\s+offer)?|offer)\s+(?:at|with|from)\s+" + _PLACE_OBJ, "works_at", "{s} works at {o}"),
    _r(r"\b" + _SUBJ + r"(?:\s+(?:still|currently|now))?\s+works?\s+(?:at|for)\s+" + _PLACE_OBJ, "works_at", "{s} works at {o}"),
    _r(r"\b" + _SUBJ + r"\s+(?:(?:just|recently)\s+)?joined\s+" + _CAP_OBJ + r"\s+as\b", "works_at", "{s} works at {o}"),
    _r(r"\b" + _SUBJ + r"\s+works?\s+as\s+(?P<obj>(?:a|an)\s+(?:[a-z]+\s){0,2}[a-z]+)", "job_title", "{s} works as {o}"),
    _r(r"\b" + _SUBJ + _BE + r"\s+(?:(?:now|currently|still)\s+)?(?P<obj>(?:a|an)\s+(?:[a-z]+\s){0,2}[a-z]+)", "job_title", "{s} is {o}"),
    _r(r"\b" + _SUBJ + _BE + r"\s+(?:(?:now|currently)\s+)?studying\s+" + _OBJ, "studies", "{s} studies {o}"),
    _r(r"\b" + _SUBJ + r"\s+(?:study|studies|majored in|major in)\s+" + _OBJ, "studies", "{s} studies {o}"),
    # identity
    _r(r"\bmy name is\s+(?P<obj>(?-i:[A-Z]\w+(?:\s+[A-Z]\w+)?))", "name", "{s}'s name is {o}"),
    _r(r"\b" + _SUBJ + _BE + r"\s+(?P<obj>\d{1,3})\s+(?:years old|now)\b", "age", "{s} is {o} years old"),
    _r(r"\b" + _SUBJ + _BE + r"\s+(?:now\s+|a\s+|strictly\s+)?(?P<obj>vegetarian|vegan|pescatarian|gluten[- ]free|keto)\b", "diet", "{s} is {o}"),
    _r(r"\b" + _SUBJ + _BE + r"\s+allergic to\s+" + _OBJ, "allergic_to", "{s} is allergic to {o}"),
    _r(r"\bmy birthday is\s+(?:on\s+)?(?P<obj>[A-Z]\w+\s+\d{1,2}(?:st|nd|rd|th)?|\d{1,2}(?:st|nd|rd|th)?\s+(?:of\s+)?[A-Z]\w+)", "birthday", "{s}'s birthday is {o}"),
    _r(r"\b" + _SUBJ + _BE + r"\s+(?P<obj>married|engaged|single|divorced)\b", "relationship_status", "{s} is {o}"),
    _r(r"\b" + _SUBJ + r"\s+(?:just\s+)?got (?P<obj>married|engaged|divorced)\b", "relationship_status", "{s} is {o}"),
    # people and pets
    _r(r"\bmy (?P<qual>" + _RELATIONS + r")(?:'s name is|,| is named| is called| named| called)?\s+(?P<obj>(?-i:[A-Z][a-z]+))\b", "has_relation", "{s}'s {q} is {o}", False, "qual"),
    _r(_SUBJX + r"\s+(?:have|has|got|adopted)\s+(?:a|an|two|three|another)\s+(?:new\s+)?(?:\w+\s)?(?P<qual>" + _PETS + r")s?\s+(?:named|called)\s+(?P<obj>(?-i:[A-Z][a-z]+))", "has_pet", "{s} has a {q} named {o}", False, "qual"),
    _r(r"\bmy (?P<qual>" + _PETS + r")(?:'s name is|,| is named| is called| named| called)\s+(?P<obj>(?-i:[A-Z][a-z]+))", "has_pet", "{s} has a {q} named {o}", False, "qual"),
    # preferences
    _r(r"\bmy (?:all[- ]time\s+)?favou?rite (?P<qual>[a-z]+(?: [a-z]+)?) (?:is|are|has to be|would be)\s+" + _OBJ, "favorite", "{s}'s favorite {q} is {o}", False, "qual"),
    _r(r"\b" + _SUBJ + r"\s+(?:(?:really|absolutely|just|also|totally)\s+)?(?:love|loves|like|likes|enjoy|enjoys|adore|adores)\s+" + _OBJ, "likes", "{s} likes {o}"),
    _r(r"\b" + _SUBJ + _BE + r"\s+(?:a\s+)?(?:big|huge|great)?\s*fan of\s+" + _OBJ, "likes", "{s} likes {o}"),
    _r(r"\b" + _SUBJ + _BE + r"\s+(?:really\s+)?(?:into|passionate about|obsessed with)\s+" + _OBJ, "likes", "{s} likes {o}"),
    _r(r"\b" + _SUBJ + r"(?:'ve|’ve| have|'s|’s| has) been\s+(?:really\s+|totally\s+|so\s+)?(?:into|loving|enjoying|obsessed with|hooked on)\s+" + _OBJ, "likes", "{s} likes {o}"),
    _r(r"\b" + _SUBJ + _BE + r"\s+(?:(?:really|very|particularly|especially|also|quite|so|most)\s+)?interested in\s+"
       r"(?!(?:your|you|any|some|what|how|whether|this|that|it|them|these|those|finding|getting|buying|hearing|"
       r"knowing|seeing|trying|exploring|learning more|making|creating|setting up)\b)"
       r"(?!\w+ing\s+(?:the|a|an|this|that|in|with|at|on|to|for|about|into|different|new|more|some|my)\b)(?!\w+\s+related\b)" + _OBJ,
       "likes", "{s} is interested in {o}"),
    # a name, then "which I enjoy using / love": "Adobe Premiere Pro, which I enjoy to use"
    _r(_CAP_OBJ + r",?\s+which\s+(?P<subj>I)\s+(?:really\s+|also\s+)?(?:enjoy|love|like|adore)\b", "likes", "{s} likes {o}"),
    _r(r"\b" + _SUBJ + r"\s+(?:hate|hates|dislike|dislikes|can't stand|cannot stand|detest)\s+" + _OBJ, "dislikes", "{s} dislikes {o}"),
    _r(r"\b" + _SUBJ + r"\s+(?:prefer|prefers)\s+" + _OBJ, "prefers", "{s} prefers {o}"),
    _r(r"\b" + _SUBJ + r"\s+(?:usually|always|often|regularly|normally)\s+(?P<obj>(?!\w+ed\b)[a-z]+\s+[\w' ]{2,40}?)(?=[,.!;]|$| and | but | when | whenever | if | unless | because )", "habit", _USUALLY),
    # possessions and plans
    _r(_SUBJX + r"\s+(?:just\s+|recently\s+|finally\s+)?(?:(?:bought|purchased)\s+(?:a|an|my|the)|got\s+(?:a new|my new|myself a))\s+(?:new\s+)?(?!(?:job|position|role|offer|promotion|raise|chance|call|message|email|letter|(?:\w+\s+){0,2}results|news|feedback|grades?|scores?|diagnosis|vaccine|shot|haircut|period|hands|day|night|week|weekend|month|year|time|other day|addition|member)\b)" + _OBJ, "bought", "{s} bought {o}"),
    _r(r"\b" + _SUBJ + r"(?:\s+(?:own|owns)|(?:'ve|’ve| have|'s|’s| has)\s+(?:got|had|owned)|\s+(?:still\s+)?(?:have|has))\s+(?P<det>a|an|my|her|his|two|three|four|five|six|seven|eight|nine|ten|several|some|\d{1,3})\s+(?!(?:new\s+)?" + _NOT_OWNED + r")(?:new\s+)?" + _OBJ, "owns", "{s} owns {d}{o}"),
    _r(r"\b" + _SUBJ + _BE + r"\s+(?:planning|going|about)\s+to\s+" + _OBJ, "plans", "{s} plans to {o}"),
    _r(_SUBJX + r"\s+(?:visited|went to|traveled to|travelled to)\s+" + _CAP_OBJ, "visited", "{s} visited {o}"),
]

# Pastimes named by one word (or a fixed pair): "went hiking", "my love for surfing".
_ACTIVITIES = (
    r"hiking|biking|cycling|camping|running|jogging|swimming|surfing|skiing|snowboarding|snowshoeing|"
    r"climbing|rock climbing|bouldering|fishing|kayaking|canoeing|sailing|rowing|skating|skateboarding|"
    r"painting|drawing|sketching|pottery|knitting|crocheting|sewing|quilting|embroidery|woodworking|"
    r"baking|cooking|gardening|reading|writing|journaling|dancing|singing|yoga|meditation|meditating|"
    r"photography|volunteering|birdwatching|bird watching|horseback riding|horse riding|golf|tennis|"
    r"soccer|basketball|volleyball|baseball|badminton|chess|gaming|calligraphy|scrapbooking|origami|"
    r"pilates|boxing|martial arts|karate|judo|fencing|archery|weightlifting|cross-country skiing|"
    r"stargazing|beekeeping|picnics?|road trips?|board games"
)
# Things one attends, joins or runs: "a pottery class", "a running group", "the art show".
_GATHERINGS = (
    r"class|classes|workshop|group|course|club|team|league|festival|concert|show|exhibition|exhibit|"
    r"conference|retreat|seminar|meetup|fair|marathon|race|tournament|camp|choir|band|book club|"
    r"fundraiser|charity event|charity run|parade|rally|competition|lecture|webinar"
)
_WE = r"(?P<subj>I|we|me and my \w+|my \w+ and I)"
# An activity counts once it happens: not "I've been wanting to do some birdwatching".
_NOT_YET = re.compile(
    r"\b(?:wanting to|meaning to|planning to|plan to|going to|gonna|will|'ll|’ll|tomorrow|someday|next)\b", re.I
)
_ACTIVITY_VERBS = (
    r"went|go|goes|going|gone|been|do|did|does|doing|love|loved|enjoy|enjoyed|tried|started|took up|"
    r"picked up|had|have|went on|took|spent [a-z]+ [a-z]+|practice|practiced|practise"
)
_NOT_OTHERS = r"(?!(?:you|he|she|they|your|his|her|their)\b)"
# What the subject takes part in: a gathering attended, joined or run, or a word of
# _ACTIVITIES after the subject and a verb of doing (negations are dropped in _draft).
_ACTIVITY_RULES = [
    _r(r"\b" + _WE + r"(?:'ve|’ve| have|'d|’d| had)?\s+(?:(?:just|recently|finally|also|even)\s+)?"
       r"(?:attended|joined|started|ran|organized|organised|hosted|signed up for|took|went to|checked out|"
       r"participated in|took part in|competed in|volunteered at)\s+(?:a|an|the|my|our|this|another)\s+"
       r"(?P<obj>(?:[\w'-]+\s+){0,3}?(?:" + _GATHERINGS + r"))\b", "attended", "{s} attended {o}"),
    _r(r"\b" + _WE + r"(?:'ve|’ve| have|'d|’d| had|'m|’m| am|'re|’re| are)?\s+(?:" + _NOT_OTHERS + r"[a-z]+\s+){0,6}?"
       r"(?:" + _ACTIVITY_VERBS + r")\s+(?:" + _NOT_OTHERS + r"[a-z]+\s+){0,2}?(?P<obj>(?-i:" + _ACTIVITIES + r"))\b",
       "does", "{s} does {o}"),
    # subjectless, past tense (present would be advice: "Have a blast baking!"): "Went camping"
    _r(r"^(?:went|did|had|tried|started|spent [a-z]+ [a-z]+|took up|picked up|loved|enjoyed|been)\s+"
       r"(?:" + _NOT_OTHERS + r"[a-z]+\s+){0,2}?(?P<obj>(?-i:" + _ACTIVITIES + r"))\b", "does", "{s} does {o}"),
    # "... last weekend hiking with my church friends"
    _r(r"\b" + _WE + r"\b[^?]*?\b(?P<obj>(?-i:" + _ACTIVITIES + r"))\s+(?:[a-z]+\s+)?with\s+(?:my|our|some|a|the)\b",
       "does", "{s} does {o}"),
    _r(r"\b(?:my|our)\s+(?:love|passion|hobby)\s+(?:for|of|is)\s+(?P<obj>(?-i:" + _ACTIVITIES + r"))\b",
       "does", "{s} does {o}"),
]
# Owning shown by use: "playing my Fender", "service my Korg B1, which I've had for 3 years".
_USE_RULES = [
    _r(r"(?:\bI(?:'m|’m| am|'ve been|’ve been| have been| was|'ll|’ll| will)?|\bto)\s+(?:(?:still|really|finally|also)\s+)?"
       r"(?:playing|play|played|selling|servicing|service|serviced|fixing|fix|fixed|repairing|repair|repaired|tuning|"
       r"tune|tuned|upgrading|upgrade|upgraded|restoring|restore|restored|riding|ride|rode|driving|drive|drove)\s+"
       r"my\s+(?:old\s+|new\s+|trusty\s+)?(?!" + _NOT_OWNED + r"|(?:own|way|best|favou?rite|part|role|time|life|skills?|game|"
       r"self|mind|story|idea)\b)" + _OBJ,
       "owns", "{s} owns {o}"),
    _r(r"\bmy\s+(?:old\s+|new\s+)?" + _OBJ + r",?\s+(?:which|that)\s+I(?:'ve|’ve| have)\s+(?:had|owned)\b",
       "owns", "{s} owns {o}"),
]
# What someone has lately been doing with a thing: "I've been listening to a lot of true crime".
_RECENT_HABIT = _r(
    r"\b" + _SUBJ + r"(?:'ve|’ve| have|'s|’s| has) been\s+(?:(?:really|mostly|mainly|also)\s+)?"
    r"(?P<qual>listening to|watching|reading|playing|using|cooking|baking|learning|practicing|practising|collecting)\s+"
    r"(?:a lot of\s+|lots of\s+|more\s+)?(?!(?:it|them|this|that|about|up|on|into|through|over|around)\b)" + _OBJ,
    "habit", "{s} has been {q} {o}", False, "qual",
)
_RULES += _ACTIVITY_RULES + _USE_RULES + [_RECENT_HABIT]
# An object that only points back ("I enjoy to use", "I love it"), stops at a quantifier ("having
# some [of these]") or is the rest of a clause ("the things I love make writing fun") names nothing.
_EMPTY_OBJ = re.compile(
    r"^(?:to|to \w+|using|doing|it|them|that|this|those|these|one|so|too|stuff|things|the|a|an|my|something|"
    r"her|him|you|us|lately|recently|again|now|\w+ (?:someone|somebody|something|anything|anyone)|"
    r"(?:\w+ )?(?:a |the )?(?:some|any|all|lots|most|many|few|much|one|part|bit|couple)|"
    r"(?:is|was|are|were|makes|made|gives|helps|keeps|brings|means|has)\b.*)$",
    re.I,
)
# What one likes in a reply is a reaction, not a taste: "I like the idea of…", "I love your photos".
_REACTION = re.compile(
    r"^(?:idea|ideas|sound|look|suggestion|suggestions|way|fact|thought|results|when|how|what|that|it|this|"
    r"smell|taste|feel|feeling|vibe|vibes|view|sight|your|you|colou?rs?|texture|design|theme|details?|composition|"
    r"tech|shot|photo|pic|picture|message)\b",
    re.I,
)
# An object that points at something said before ("seeing them soak", "their design") or is cut
# off before one ("I love making this cake" -> "making") names nothing on its own.
_PRONOUN = re.compile(r"\b(?:it|its|them|they|their|theirs|him|this|that|these|those)\b", re.I)
_DEICTIC_NEXT = re.compile(
    r"\s*(?:(?:this|that|these|those)\b(?!\s+(?:days?|weeks?|weekends?|months?|years?|mornings?|evenings?|nights?|"
    r"times?|summer|winter|spring|fall|autumn|season))|(?:it|them|one)\b)",
    re.I,
)
# "I'm going to need new shoes": a need, not a plan.
_NOT_PLAN = re.compile(r"^(?:need|have to|want|wanna)\b", re.I)
# An object is a thing, not a phrase of time or manner: "I've been playing for four months", "a
# job I enjoy every day".
_PREP_OBJ = re.compile(r"^(?:for|of|about|with|in|on|at|since|from|by|around|over|every)\b", re.I)
# ...nor is one had when its head noun is none ("some awesome news", "a knee injury from the race").
_NOT_OWNED_HEAD = re.compile(
    r"\b" + _NOT_OWNED + r"(?:\s+coming up|\s+(?:from|of|with|at|on|during|after)\s+(?:the|a|an|my|our|last|this)\b.*)?$", re.I
)
# "I've had some thrilling games": what one has been through, not what one has.
_HAD_SOME = re.compile(r"(?:'ve|’ve|\bhave|'d|’d|\bhad)\s+had\s+(?:some|several|two|three|four)\b", re.I)
# "I used to love hiking": no longer so.
_USED_TO = re.compile(r"\bused to\b", re.I)
# "I'm going to try to…": a plan needs more than a light verb.
_LIGHT_VERB = re.compile(r"^(?:try|be|have|get|do|make|go|see|keep|take|start|give|use|need|ask|check|look)$", re.I)
# Clause openers: a hypothetical in an earlier clause does not reach past them
# ("I enjoy it on my commute, but I want to branch out" states the first part).
_CLAUSE = re.compile(r"(?:,\s*|\s+)(?:but|although|though|whereas|however)\b|;|" + _DASH)

# The speaker's own words inside an object, told of them ("running my own studio" -> "running
# their own studio"); a clause of theirs after the thing ("the kit I bought from Amazon") is cut.
_OWN_CLAUSE = re.compile(r"\s+(?:that\s+|which\s+|who\s+)?(?:I|I've|I'm|I'd|I'll|we|we've|we're)(?=\s|$).*$", re.I)
_OWN_WORD = re.compile(r"\b(?:my|our|me|myself|mine)\b")  # lower case: "ME" may be a state, "Our Lady" a name
_OWN_WORDS = {"my": "their", "our": "their", "me": "them", "myself": "themselves", "mine": "theirs"}
# What is left dangling at the end once an object is cut: "the history of my [vase]".
_DANGLING = re.compile(
    r"(?:\s+(?:their|the|a|an|what|which|that|who|how|where|when|of|from|about|like|to|into|with|for|during|"
    r"in|on|at|by|over|through))+$",
    re.I,
)
# An object that runs past its word limit takes up to four words more to its end ("breaking up
# my studying into smaller parts"); longer, it ends at its last preposition.
_CUT_AT = re.compile(r"^(?P<keep>.+?)\s+(?:into|of|from|about|during|over|through|by)\s+(?:(?!(?:into|of|from|about|during|over|through|by)\b)\S+\s*)*$", re.I)
_GOES_ON = re.compile(r"\s+(?!" + _OBJ_STOP + r")[A-Za-z]", re.I)
_DOINGS = frozenset({"likes", "dislikes", "prefers", "plans"})  # predicates whose object can be a doing
_DOING_MORE = re.compile(r"\s+(?:with|for|in|on|at)\s+[\w'&-]+(?:\s+(?!" + _OBJ_STOP + r")[\w'&-]+){0,3}", re.I)
_MORE = re.compile(r"(?:\s+(?!" + _OBJ_STOP + r")[\w'&-]+){1,4}", re.I)
# A habit is told in the third person: "I usually prepare my lunch" -> "user usually prepares…".
_NOT_VERBS = frozenset({"just", "also", "really", "only", "never", "can", "will", "would", "should", "could", "might", "must"})
_PAST = frozenset({"took", "went", "got", "had", "made", "did", "was", "were", "ate", "ran", "saw", "came", "felt",
                   "left", "kept", "spent", "bought", "brought", "thought", "drove", "rode", "wore", "wrote", "sat"})


def _third_person(verb_phrase: str) -> str:
    """The phrase with its first word, a verb, in the third person singular ("go" -> "goes")."""
    first, _, rest = verb_phrase.partition(" ")
    low = first.lower()
    if low in _NOT_VERBS or low in _PAST:
        return verb_phrase
    irregular = {"be": "is", "have": "has", "do": "does", "go": "goes"}
    if low in irregular:
        verb = irregular[low]
    elif re.search(r"(?:s|sh|ch|x|z|o)$", low):
        verb = first + "es"
    elif re.search(r"[^aeiou]y$", low):
        verb = first[:-1] + "ies"
    else:
        verb = first + "s"
    return f"{verb} {rest}" if rest else verb


def _told_of_them(obj: str) -> str:
    """An object in the speaker's words (their own clauses already cut), told of them: "my" -> "their"."""
    return _DANGLING.sub("", _OWN_WORD.sub(lambda w: _OWN_WORDS[w.group(0)], obj))


_NOT_JOBS = re.compile(
    r"\b(bit|lot|little|fan|big|huge|great|good|bad|part|member|mess|fan|person|kind|sort|mom|dad|mother|father|"
    r"parent|wife|husband|morning|night|beginner|newbie|natural|first|second|sucker|vegan|vegetarian)\b",
    re.I,
)


# Statements: sentences in the first person...
_FIRST_PERSON = re.compile(r"\b(?:I|me|my|mine|we|us|our)\b", re.I)
# ...that ask for nothing (a request tells what the speaker wants now, not what is so)...
_REQUEST = re.compile(
    r"\b(?:can you|could you|would you|will you|please|help me|recommend|suggest|any (?:tips|advice|ideas|suggestions)|"
    r"wondering|let me know|thanks?|thank you|tell me|give me|show me|"
    r"(?:looking|searching|asking) for (?:[\w-]+ ){0,3}?(?:help|advice|tips|ideas|suggestions|recommendations|resources)|"
    r"need (?:[\w-]+ ){0,3}?(?:help|advice|tips|ideas|suggestions|recommendations))\b",
    re.I,
)
# ...opened by a word that only links it to what came before.
_LEAD = re.compile(r"^(?:(?:by the way|btw|actually|also|oh|well|so|anyway|and|but|plus|oh and|haha|lol)\b[,!]?\s*)+", re.I)
_STATEMENT_WORDS = (3, 60)
_STATEMENT_CHARS = 300


_KIND_ORDER = {"money": 0, "duration": 1, "weight": 2, "distance": 3, "count": 4}


def _amount_for(predicate: str, sentence: str, m: re.Match[str]) -> Quantity | None:
    """The amount a fact carries: one told in its match or after it in its clause ("I bought a
    bike for $300"); money first for purchases, spending and fundraising."""
    if predicate == "plans" or _NOT_YET.search(sentence):
        return None  # an amount of what has not happened is no amount yet ("going to spend $200")
    amt = m.groupdict().get("amt")
    if amt:
        qs = find_quantities(amt)
        return qs[0] if qs else None
    brk = _CLAUSE.search(sentence, m.end())
    qs = [q for q in find_quantities(sentence[m.start() : brk.start() if brk else len(sentence)])]
    if predicate in _MONEY_FIRST:
        qs.sort(key=lambda q: _KIND_ORDER[q.kind])
    return qs[0] if qs else None


def amount_of(sentence: str) -> Quantity | None:
    """A statement's amount: the first of its amounts, money before time, weight, distance and
    counts ("I spent $50 on 3 books" carries $50); none in what is yet to happen."""
    if _NOT_YET.search(sentence):
        return None
    qs = find_quantities(sentence)
    return min(qs, key=lambda q: (_KIND_ORDER[q.kind], q.start)) if qs else None


def statement_of(sentence: str) -> str | None:
    """The sentence as a statement of the speaker's (leading link words off), or None: it must be
    in the first person, 3–60 words, not a question or request, and its first clause not a
    hypothetical ("I'm thinking of…", "If I…", "I'd love to…")."""
    body = _LEAD.sub("", sentence.strip()).strip()
    n = len(body.split())
    if not (_STATEMENT_WORDS[0] <= n <= _STATEMENT_WORDS[1]) or body.endswith("?"):
        return None
    if not _FIRST_PERSON.search(body) or _REQUEST.search(body):
        return None
    if _HYPOTHETICAL.search(_CLAUSE.split(body.split(",")[0])[0]):
        return None
    return body[:_STATEMENT_CHARS]


_SPACES = re.compile(r"\s+")


def said_key(body: str) -> str:
    """A statement's object: its sentence with spaces collapsed and no closing stop, so the same
    sentence said again ("I went hiking!" after "I went hiking.") is the same statement."""
    return _SPACES.sub(" ", body).strip().rstrip(" .!")


def statement_drafts(text: str, speaker: str) -> list[FactDraft]:
    """The statements of a message (see :func:`statement_of`) as ``says`` drafts, each once: the
    object is the :func:`said_key`, the text the sentence as said."""
    out: list[FactDraft] = []
    for m in SENTENCE.finditer(text):
        body = statement_of(m.group(0))
        if body is not None:
            key = said_key(body)
            if key and all(d.object != key for d in out):
                q = amount_of(body)
                out.append(FactDraft(speaker, STATEMENT, key, body, False, 0.5, "", q.value if q else None, q.unit if q else ""))
    return out


class RuleExtractor:
    """The offline default: regular patterns over first-person statements.

    With ``statements`` (the default), every sentence that tells of the speaker's world (see
    :func:`statement_of`) also comes back verbatim as a ``says`` draft: a key that recalls the
    sentence on its own, where the message around it (a request, other topics) would bury it —
    and a note of what was said for what the patterns do not know.
    """

    name = "rules"

    def __init__(self, statements: bool = True) -> None:
        self.statements = statements

    @property
    def cache_key(self) -> tuple[str, bool]:
        """What its drafts depend on beyond the message: they may be kept per text (see
        :class:`~engramdb.encode.analysis.Analyses`). An extractor without it is asked again."""
        return (self.name, self.statements)

    def extract(self, text: str, speaker: str, role: str | None) -> list[FactDraft]:
        if role == "assistant":
            return []
        out: list[FactDraft] = []
        seen: set[tuple[str, str, str, bool]] = set()
        for m in SENTENCE.finditer(text):
            sentence = m.group(0).strip()
            if not sentence or sentence.endswith("?"):
                continue
            clauses = [0] + [c.end() for c in _CLAUSE.finditer(sentence)]
            taken: list[tuple[int, int]] = []
            for rule in _RULES:
                for fm in rule.pattern.finditer(sentence):
                    span = fm.span()
                    if any(span[0] < b and a < span[1] for a, b in taken):
                        continue
                    # hypothetical up to the end of the match, within its clause: "If I moved to X",
                    # "I'd love to try X" — not "I moved to X, but I want to go back"
                    start = max(c for c in clauses if c <= span[0])
                    if _HYPOTHETICAL.search(sentence[start : span[1]]):
                        continue
                    draft = self._draft(rule, fm, speaker, sentence)
                    if draft is None:
                        continue
                    key = (draft.subject, draft.predicate, draft.object.lower(), draft.negated)
                    if key in seen:
                        continue
                    seen.add(key)
                    taken.append(span)
                    out.append(draft)
        return out + statement_drafts(text, speaker) if self.statements else out

    def _draft(self, rule: _Rule, m: re.Match[str], speaker: str, sentence: str) -> FactDraft | None:
        groups = m.groupdict()
        raw = groups.get("obj") or groups.get("obj2") or ""
        if raw and len(raw.split()) >= _OBJ_WORDS and m.end() == m.end("obj" if groups.get("obj") else "obj2"):
            more = _MORE.match(sentence[m.end() :])  # the phrase went on past the word limit:
            if more and not _GOES_ON.match(sentence[m.end() + more.end() :]) and len(raw + more.group(0)) <= 60:
                raw += more.group(0)  # ...a few words more end it ("the history of medieval castles")
            elif more:
                cut = _CUT_AT.match(raw)  # ...or it ends at its last preposition
                raw = cut.group("keep") if cut else raw
        if (raw and rule.predicate in _DOINGS and not _LIGHT_VERB.match(raw)
                and (raw.split()[0].lower().endswith("ing") or rule.predicate == "plans")):
            # a doing goes on where it is done and with whom: "curling up with a good book"
            pp = _DOING_MORE.match(sentence[m.end() :])
            if (pp and not _GOES_ON.match(sentence[m.end() + pp.end() :]) and not _PRONOUN.search(pp.group(0))
                    and len(raw + pp.group(0)) <= 60):
                raw += pp.group(0)
        obj = _clean(raw)
        if rule.predicate != "name":  # after the dash cut; cleaned again, as the cut can leave "of"
            obj = _clean(_OWN_CLAUSE.sub("", obj))
        if not obj or len(obj) > 60 or _EMPTY_OBJ.match(obj):
            return None
        if (rule.predicate == "likes" and _REACTION.match(obj)) or (
            rule.predicate == "plans" and (_LIGHT_VERB.match(obj) or _NOT_PLAN.match(obj))
        ):
            return None
        if rule.predicate == "owns" and (_NOT_OWNED_HEAD.search(obj) or _HAD_SOME.search(m.group(0))):
            return None
        if _PREP_OBJ.match(obj) or (not rule.negated and _USED_TO.search(m.group(0))):
            return None
        if (rule.predicate in PREFERENCE_PREDICATES or rule.predicate == "plans") and (
            _PRONOUN.search(obj) or (" " not in obj and _DEICTIC_NEXT.match(sentence[m.end() :]))
        ):
            return None
        rel = groups.get("rel")
        subject = f"{speaker}'s {rel.lower()}" if rel else speaker
        if rule.predicate == "job_title":
            job = _PROFESSION.match("a " + obj)
            if not job or _NOT_JOBS.search(job.group(1)):
                return None
            obj = job.group(1)
        if rule.predicate in ("does", "attended") and _NOT_YET.search(sentence):
            return None
        if rule.predicate == "does" and re.match(r"\s+(?:about|up on)\b", sentence[m.end() :]):
            return None  # "I've been reading about X" is a topic, not a pastime
        if rule.predicate == "likes" and _NEG.search(sentence[: m.start() + 12]) and not rule.negated:
            return None  # "I don't really like X" is caught by the negated rule
        if not rule.negated and _NEG.search(sentence[max(0, m.start() - 3) : m.end()]) and rule.predicate != "relationship_status":
            return None
        qualifier = (groups.get(rule.qualifier_group) or "").lower() if rule.qualifier_group else ""
        det = (groups.get("det") or "").lower()
        det = "" if det in ("a", "an", "my", "her", "his") else det + " "
        told = _told_of_them(obj)
        obj = told or obj
        template = rule.template
        if rule.predicate == "favorite" and re.search(r"\bone of\s*$", sentence[: m.start()], re.I):
            template = "one of " + template  # "One of my favorite dishes is lasagna"
        amt = (groups.get("amt") or "").strip()
        text = template.format(s=subject, o=_third_person(obj) if rule.template == _USUALLY else obj, q=qualifier, d=det, a=amt)
        q = _amount_for(rule.predicate, sentence, m)
        return FactDraft(subject, rule.predicate, obj, text, rule.negated, 0.8, qualifier,
                         q.value if q else None, q.unit if q else "")

