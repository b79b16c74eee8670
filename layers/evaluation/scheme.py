"""Evaluation schemes (考评方案): parsed, validated and stored with versions.

A scheme is configuration (YAML, loaded by `blockdata evaluation scheme load`): its period,
the weights of its three parts (internal 内部评价, survey 满意度调查, hotline 三率), the
hotline's k and weights, the internal part's five aspects with their items, the survey's
questions and the class rules (先进 / 进步 / 治理 / 整改). `parse_scheme` checks it and
refuses with a Chinese message that names the bad value; `save_scheme` also checks that
every owner is a district department in `units`, and stores a changed body as the next
version (the same body again stores nothing). The stored body is the normalised one (every
default written out), so a publication's copy says exactly what was used.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml

from etl.aggregates import RATE_NAMES, RatesConfig, load_rates
from layers.evaluation.tables import SCALES, evaluation_schemes
from layers.units import units

DEMO_SCHEME = Path(__file__).resolve().parents[2] / "etl" / "config" / "evaluation" / "xicheng.yaml"
PARTS = ("internal", "survey", "hotline")
PART_NAMES = {"internal": "内部评价", "survey": "满意度调查", "hotline": "热线三率"}
ASPECTS = ("tasks", "law", "party", "work", "bonus")
ASPECT_NAMES = {
    "tasks": "市里下达和部门任务",
    "law": "依法行政及综合管理",
    "party": "党群工作",
    "work": "工作评价",
    "bonus": "加扣分项",
}
BONUS = "bonus"
RULES = ("manual", "on_time", "per_event")
SOURCES = ("overdue_cases",)  # where a per_event item's events come from, besides its rows
PERIOD_KINDS = ("month", "quarter", "year", "window")
CLASS_RULES = (
    "rank_at_most",
    "rank_at_least",
    "rank_change_at_least",
    "composite_below",
    "composite_at_least",
)
THREE = ("满意", "基本满意", "不满意")
DEFAULT_SCALE_VALUES = {"满意": 100.0, "基本满意": 90.0, "不满意": 0.0}
CODE = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
EPSILON = 1e-6


class SchemeError(ValueError):
    """A scheme refused: the message (Chinese first) names the bad value."""


class UnknownScheme(LookupError):
    """No scheme of that code (or version) is stored."""


@dataclass(frozen=True)
class Item:
    code: str
    name: str
    aspect: str
    owner: str
    max: float
    rule: str  # manual | on_time | per_event
    each: float | None = None  # per_event: points per event (signed)
    cap: float | None = None  # per_event: at most this many points off (or on)
    source: str | None = None  # per_event: 'overdue_cases', else the item's event rows


@dataclass(frozen=True)
class Aspect:
    code: str
    name: str
    max: float
    items: tuple[Item, ...]


@dataclass(frozen=True)
class Question:
    code: str
    text: str
    weight: float
    scale: str  # five | three


@dataclass(frozen=True)
class ClassRule:
    name: str
    conditions: tuple[tuple[str, float], ...]  # (rule, bound): every one must hold


@dataclass(frozen=True)
class Scheme:
    code: str
    version: int | None  # None until stored
    name: str
    body: dict[str, Any]  # the normalised scheme, as stored
    period_kind: str
    start_day: int | None
    parts: dict[str, float]
    rates: RatesConfig
    aspects: tuple[Aspect, ...]
    scale_values: dict[str, float]
    questions: tuple[Question, ...]
    classes: tuple[ClassRule, ...]

    @property
    def items(self) -> tuple[Item, ...]:
        return tuple(i for a in self.aspects for i in a.items)


def _fail(message: str, english: str) -> SchemeError:
    return SchemeError(f"{message} ({english})")


def _number(value: Any, where: str, *, minimum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _fail(f"{where} 应为数值，得到 {value!r}", f"{where} must be a number")
    if minimum is not None and value < minimum:
        raise _fail(
            f"{where} 不能小于 {minimum:g}，得到 {value!r}", f"{where} must be ≥ {minimum:g}"
        )
    return float(value)


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(f"{where} 应为非空文本，得到 {value!r}", f"{where} must be non-empty text")
    return value.strip()


def _code(value: Any, where: str) -> str:
    if not isinstance(value, str) or not CODE.fullmatch(value):
        raise _fail(
            f"{where} 代码无效：{value!r}（小写字母、数字、- 或 _）",
            f"{where}: bad code, lower-case letters, digits, - and _",
        )
    return value


def _mapping(value: Any, where: str, known: tuple[str, ...] | None = None) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(f"{where} 应为映射，得到 {value!r}", f"{where} must be a mapping")
    if known is not None:
        unknown = sorted(str(k) for k in value if k not in known)
        if unknown:
            raise _fail(
                f"{where} 含未知的键 {', '.join(unknown)}（可用：{', '.join(known)}）",
                f"{where}: unknown keys",
            )
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise _fail(f"{where} 应为非空列表，得到 {value!r}", f"{where} must be a non-empty list")
    return value


def _sum_text(values: dict[str, float]) -> str:
    return " + ".join(f"{k} {v:g}" for k, v in values.items()) + f" = {sum(values.values()):g}"


def _period(value: Any) -> tuple[dict[str, Any], str, int | None]:
    doc = _mapping(
        value if value is not None else {"kind": "month"}, "period", ("kind", "start_day")
    )
    kind = doc.get("kind")
    if kind not in PERIOD_KINDS:
        raise _fail(
            f"考评周期类型未知：{kind!r}（可用：{', '.join(PERIOD_KINDS)}）",
            f"unknown period kind {kind!r}",
        )
    if kind != "window":
        if "start_day" in doc:
            raise _fail("只有 window 周期可以设 start_day", "start_day is for a window period")
        return {"kind": kind}, kind, None
    day = doc.get("start_day")
    if isinstance(day, bool) or not isinstance(day, int) or not 1 <= day <= 28:
        raise _fail(
            f"window 周期的 start_day 应为 1 至 28 的整数，得到 {day!r}",
            "start_day must be a whole number from 1 to 28",
        )
    return {"kind": kind, "start_day": day}, kind, day


def check_parts(value: Any) -> dict[str, float]:
    """The three parts' weights: known parts (a missing one weighs 0), ≥ 0, adding up to 100."""
    doc = _mapping(value, "parts", PARTS)
    parts = {p: _number(doc.get(p, 0), f"parts.{p}", minimum=0) for p in PARTS}
    if abs(sum(parts.values()) - 100) > EPSILON:
        raise _fail(
            f"三部分权重之和应为 100：{_sum_text(parts)}", "the parts' weights must add up to 100"
        )
    return parts


def _rates(value: Any) -> RatesConfig:
    if value is None:
        return load_rates()
    doc = _mapping(value, "hotline", ("k", "weights"))
    k = _number(doc.get("k"), "hotline.k")
    if not 0 <= k <= 1:
        raise _fail(f"hotline.k 应在 0 至 1 之间，得到 {k:g}", "k must lie in [0, 1]")
    weights_doc = _mapping(doc.get("weights"), "hotline.weights", RATE_NAMES)
    weights = {
        n: _number(weights_doc.get(n), f"hotline.weights.{n}", minimum=0) for n in RATE_NAMES
    }
    if abs(sum(weights.values()) - 1) > EPSILON:
        raise _fail(
            f"三率权重之和应为 1：{_sum_text(weights)}", "the rates' weights must add up to 1"
        )
    return RatesConfig(k=k, weights=weights)


def _item(doc: Any, aspect: str, aspect_max: float, where: str) -> Item:
    keys = ("code", "name", "owner", "max", "rule", "each", "cap", "source")
    doc = _mapping(doc, where, keys)
    code = _code(doc.get("code"), f"{where}.code")
    where = f"考评项 {code}"
    name = _text(doc.get("name"), f"{where} 的 name")
    owner = _text(doc.get("owner"), f"{where} 的 owner")
    top = _number(doc.get("max"), f"{where} 的 max", minimum=0)
    if top <= 0:
        raise _fail(f"{where} 的 max 应大于 0，得到 {top:g}", f"{code}: max must be > 0")
    rule = doc.get("rule")
    if rule not in RULES:
        raise _fail(
            f"{where} 的计分规则未知：{rule!r}（可用：{', '.join(RULES)}）",
            f"{code}: unknown rule {rule!r}",
        )
    each = cap = source = None
    if rule == "per_event":
        if doc.get("each") is None or doc.get("cap") is None:
            raise _fail(
                f"{where} 按次计分（per_event），须有 each（每次分值）和 cap（上限）",
                f"{code}: per_event needs each and cap",
            )
        each = _number(doc["each"], f"{where} 的 each")
        cap = _number(doc["cap"], f"{where} 的 cap", minimum=0)
        if each == 0:
            raise _fail(f"{where} 的 each 不能为 0", f"{code}: each must not be 0")
        if cap > top:
            raise _fail(
                f"{where} 的 cap {cap:g} 超过其 max {top:g}", f"{code}: cap exceeds the item's max"
            )
        source = doc.get("source")
        if source is not None and source not in SOURCES:
            raise _fail(
                f"{where} 的事件来源未知：{source!r}（可用：{', '.join(SOURCES)}）",
                f"{code}: unknown source {source!r}",
            )
    else:
        extra = [k for k in ("each", "cap", "source") if doc.get(k) is not None]
        if extra:
            raise _fail(
                f"{where} 的 {', '.join(extra)} 只用于按次计分（per_event）",
                f"{code}: {', '.join(extra)} only for per_event",
            )
    if aspect == BONUS and top > aspect_max + EPSILON:
        raise _fail(
            f"{where} 的 max {top:g} 超过加扣分项的上限 {aspect_max:g}",
            f"{code}: max exceeds the bonus aspect's max",
        )
    return Item(code, name, aspect, owner, top, rule, each, cap, source)


def _aspects(value: Any) -> tuple[Aspect, ...]:
    docs = _list(value, "internal")
    codes = [d.get("code") if isinstance(d, dict) else d for d in docs]
    if codes != list(ASPECTS):
        raise _fail(
            f"内部评价应依次为五个方面 {', '.join(ASPECTS)}，得到 {codes!r}",
            "internal must list the five aspects in this order",
        )
    aspects = []
    seen: set[str] = set()
    for code, doc in zip(ASPECTS, docs, strict=True):
        doc = _mapping(doc, f"方面 {code}", ("code", "name", "max", "items"))
        where = f"方面 {code}"
        top = _number(doc.get("max"), f"{where} 的 max", minimum=0)
        items = tuple(
            _item(d, code, top, f"{where} 的第 {n} 项")
            for n, d in enumerate(_list(doc.get("items"), f"{where} 的 items"), 1)
        )
        for i in items:
            if i.code in seen:
                raise _fail(f"考评项代码重复：{i.code}", f"duplicate item code {i.code}")
            seen.add(i.code)
        if code != BONUS:
            total = sum(i.max for i in items)
            if total > top + EPSILON:
                listed = " + ".join(f"{i.code} {i.max:g}" for i in items)
                raise _fail(
                    f"{where} 各项满分之和 {listed} = {total:g}，超过该方面满分 {top:g}",
                    f"the items of {code} exceed its max",
                )
        name = doc.get("name")
        aspects.append(
            Aspect(code, ASPECT_NAMES[code] if name is None else _text(name, where), top, items)
        )
    main = {a.code: a.max for a in aspects if a.code != BONUS}
    if abs(sum(main.values()) - 100) > EPSILON:
        raise _fail(
            f"前四个方面满分之和应为 100：{_sum_text(main)}",
            "the max of aspects 1–4 must add up to 100",
        )
    return tuple(aspects)


def _survey(value: Any) -> tuple[dict[str, float], tuple[Question, ...]]:
    doc = _mapping(value, "survey", ("scale_values", "questions"))
    raw = doc.get("scale_values")
    values = dict(DEFAULT_SCALE_VALUES)
    if raw is not None:
        raw = _mapping(raw, "survey.scale_values", THREE)
        for answer, v in raw.items():
            values[answer] = _number(v, f"survey.scale_values.{answer}", minimum=0)
            if values[answer] > 100:
                raise _fail(
                    f"survey.scale_values.{answer} 应在 0 至 100 之间，得到 {v!r}",
                    "scale values lie in [0, 100]",
                )
    questions = []
    for n, q in enumerate(_list(doc.get("questions"), "survey.questions"), 1):
        where = f"调查第 {n} 题"
        q = _mapping(q, where, ("code", "text", "weight", "scale"))
        code = _code(q.get("code"), where)
        scale = q.get("scale")
        if scale not in SCALES:
            raise _fail(
                f"题目 {code} 的量表未知：{scale!r}（可用：{', '.join(SCALES)}）",
                f"{code}: unknown scale",
            )
        weight = _number(q.get("weight"), f"题目 {code} 的 weight", minimum=0)
        questions.append(
            Question(code, _text(q.get("text"), f"题目 {code} 的 text"), weight, scale)
        )
    codes = [q.code for q in questions]
    if len(set(codes)) != len(codes):
        raise _fail(f"调查题目代码重复：{codes!r}", "duplicate question codes")
    weights = {q.code: q.weight for q in questions}
    if abs(sum(weights.values()) - 1) > EPSILON:
        raise _fail(
            f"调查题目权重之和应为 1：{_sum_text(weights)}",
            "the survey's question weights must add up to 1",
        )
    return values, tuple(questions)


def _classes(value: Any) -> tuple[ClassRule, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _fail(f"classes 应为列表，得到 {value!r}", "classes must be a list")
    rules = []
    for n, doc in enumerate(value, 1):
        where = f"第 {n} 条分类规则"
        doc = _mapping(doc, where)
        name = _text(doc.get("name"), f"{where} 的 name")
        unknown = sorted(str(k) for k in doc if k != "name" and k not in CLASS_RULES)
        if unknown:
            raise _fail(
                f"分类 {name} 的规则未知：{', '.join(unknown)}（可用：{', '.join(CLASS_RULES)}）",
                f"class {name}: unknown rule",
            )
        conditions = tuple(
            (k, _number(doc[k], f"分类 {name} 的 {k}")) for k in CLASS_RULES if k in doc
        )
        if not conditions:
            raise _fail(f"分类 {name} 没有规则", f"class {name} has no rule")
        rules.append(ClassRule(name, conditions))
    return tuple(rules)


def _item_body(i: Item) -> dict[str, Any]:
    body: dict[str, Any] = {
        "code": i.code,
        "name": i.name,
        "owner": i.owner,
        "max": i.max,
        "rule": i.rule,
    }
    if i.rule == "per_event":
        body.update(each=i.each, cap=i.cap)
        if i.source is not None:
            body["source"] = i.source
    return body


def parse_scheme(body: dict[str, Any], version: int | None = None) -> Scheme:
    """Validate a scheme (a dict, as read from YAML or stored); SchemeError names the bad
    value. Owners are checked against `units` by `save_scheme`, not here."""
    doc = _mapping(
        body,
        "scheme",
        ("code", "name", "period", "parts", "hotline", "internal", "survey", "classes"),
    )
    code = _code(doc.get("code"), "方案 code")
    name = _text(doc.get("name"), "方案 name")
    period, kind, start_day = _period(doc.get("period"))
    parts = check_parts(doc.get("parts"))
    rates = _rates(doc.get("hotline"))
    aspects = _aspects(doc.get("internal"))
    scale_values, questions = _survey(doc.get("survey"))
    classes = _classes(doc.get("classes"))
    normal = {
        "code": code,
        "name": name,
        "period": period,
        "parts": parts,
        "hotline": {"k": rates.k, "weights": dict(rates.weights)},
        "internal": [
            {
                "code": a.code,
                "name": a.name,
                "max": a.max,
                "items": [_item_body(i) for i in a.items],
            }
            for a in aspects
        ],
        "survey": {
            "scale_values": scale_values,
            "questions": [
                {"code": q.code, "text": q.text, "weight": q.weight, "scale": q.scale}
                for q in questions
            ],
        },
        "classes": [{"name": c.name, **dict(c.conditions)} for c in classes],
    }
    # The stored body is JSON: normalise through it, so a body read back compares equal.
    normal = json.loads(json.dumps(normal, ensure_ascii=False))
    return Scheme(
        code=code,
        version=version,
        name=name,
        body=normal,
        period_kind=kind,
        start_day=start_day,
        parts=parts,
        rates=rates,
        aspects=aspects,
        scale_values=scale_values,
        questions=questions,
        classes=classes,
    )


def read_scheme_file(path: Path) -> dict[str, Any]:
    """The scheme document of a YAML file; SchemeError when it cannot be read or is no mapping."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise _fail(f"无法读取考评方案文件 {path}：{exc}", f"cannot read {path}") from exc
    if not isinstance(doc, dict):
        raise _fail(f"考评方案文件 {path} 应为一个映射", f"{path} must hold a mapping")
    return doc


def item(scheme: Scheme, item_code: str) -> Item:
    """The scheme's item `item_code`; SchemeError when it has none."""
    for i in scheme.items:
        if i.code == item_code:
            return i
    raise _fail(
        f"方案 {scheme.code} 没有考评项 {item_code!r}",
        f"scheme {scheme.code} has no item {item_code!r}",
    )


def check_owners(conn: sa.Connection, scheme: Scheme) -> None:
    """Every item's owner is a unit of kind district_department (区级部门)."""
    owners = sorted({i.owner for i in scheme.items})
    known = set(
        conn.execute(
            sa.select(units.c.code).where(
                units.c.code.in_(owners), units.c.kind == "district_department"
            )
        ).scalars()
    )
    for i in scheme.items:
        if i.owner not in known:
            raise _fail(
                f"考评项 {i.code} 的责任单位 {i.owner!r} 不是已有的区级部门",
                f"{i.code}: owner {i.owner!r} is no district department in units",
            )


def _stored(row: Any) -> Scheme:
    return parse_scheme(row.body, version=row.version)


def load_scheme(conn: sa.Connection, code: str | None = None, version: int | None = None) -> Scheme:
    """A stored scheme: its latest version by default; with no code, the latest stored
    scheme of any code (the district has one). UnknownScheme when there is none."""
    t = evaluation_schemes
    query = sa.select(t.c.code, t.c.version, t.c.body)
    if code is not None:
        query = query.where(t.c.code == code)
    if version is not None:
        query = query.where(t.c.version == version)
    order = (t.c.version.desc(),) if code is not None else (t.c.created_at.desc(), t.c.id.desc())
    row = conn.execute(query.order_by(*order).limit(1)).first()
    if row is None:
        what = (
            "任何考评方案"
            if code is None
            else f"考评方案 {code}" + ("" if version is None else f" 第 {version} 版")
        )
        raise UnknownScheme(f"没有{what} (no such scheme)")
    return _stored(row)


def save_scheme(conn: sa.Connection, body: dict[str, Any], by: str) -> tuple[Scheme, bool]:
    """Validate `body` and store it: (the scheme, True) as a new version when it differs from
    the latest stored one, (the latest, False) when it is the same."""
    scheme = parse_scheme(body)
    check_owners(conn, scheme)
    t = evaluation_schemes
    # One load of a code at a time: two would both take the same next version.
    conn.execute(
        sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext("scheme:" + scheme.code)))
    )
    latest = conn.execute(
        sa.select(t.c.version, t.c.body)
        .where(t.c.code == scheme.code)
        .order_by(t.c.version.desc())
        .limit(1)
    ).first()
    if latest is not None and latest.body == scheme.body:
        return parse_scheme(latest.body, version=latest.version), False
    version = 1 if latest is None else latest.version + 1
    conn.execute(
        sa.insert(t).values(
            code=scheme.code, version=version, name=scheme.name, body=scheme.body, created_by=by
        )
    )
    return parse_scheme(scheme.body, version=version), True


def schemes(conn: sa.Connection) -> list[dict[str, Any]]:
    """Every stored scheme: code, name and latest version, and how many versions it has."""
    t = evaluation_schemes
    ranked = sa.select(
        t.c.code,
        t.c.name,
        t.c.version,
        t.c.created_at,
        t.c.created_by,
        sa.func.count().over(partition_by=t.c.code).label("versions"),
        sa.func.row_number().over(partition_by=t.c.code, order_by=t.c.version.desc()).label("n"),
    ).subquery()
    rows = conn.execute(sa.select(ranked).where(ranked.c.n == 1).order_by(ranked.c.code)).mappings()
    return [
        {
            "code": r["code"],
            "name": r["name"],
            "version": r["version"],
            "versions": int(r["versions"]),
            "created_at": r["created_at"].isoformat(),
            "created_by": r["created_by"],
        }
        for r in rows
    ]
