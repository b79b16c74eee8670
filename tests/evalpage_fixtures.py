"""Stand-ins for the evaluation API's answers (docs/evaluation.md's Result shape), for the
/evaluation page's browser test and bench.

`result` makes a period's Result for the streets given, with part scores from a seeded
generator; ranks are computed here (competition ranking by composite at 2 decimals, then
hotline volume), independently of layers.evaluation. `stub` answers the page's calls to
/api/evaluation/schemes and /api/evaluation/periods/… in a Playwright page from such a
Result (the drill-down, /api/evaluation/drill, still goes to the server).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

PARTS = {"internal": 40, "survey": 40, "hotline": 20}
ASPECTS = ("tasks", "law", "party", "work", "bonus")
SCHEME = {"code": "xicheng", "version": 1, "name": "西城区街道工作考评"}


def ranked(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`rows` ({code, composite, volume}) with competition ranks: composite (2 decimals)
    descending, then volume descending; a street without a composite after every other."""

    def key(r: dict[str, Any]) -> tuple[bool, float, int]:
        c = r["composite"]
        return (c is None, -(round(c, 2) if c is not None else 0.0), -r["volume"])

    out = sorted(rows, key=lambda r: (*key(r), r["code"]))
    for i, r in enumerate(out):
        same = i and key(out[i - 1]) == key(r)
        r["rank"] = out[i - 1]["rank"] if same else i + 1
    return out


def composite(street: dict[str, Any], parts: dict[str, float]) -> float | None:
    values = [street[p] for p in PARTS]
    if any(v is None for v in values):
        return None
    return sum(parts[p] * street[p] for p in PARTS) / 100


def result(
    streets: list[tuple[str, str]],
    since: str,
    until: str,
    label: str,
    seed: int = 13,
) -> dict[str, Any]:
    """A live Result for `streets` ((code, name), …); the last street has no survey (its
    composite is None: "—", ranked last)."""
    rng = random.Random(seed)
    rows = []
    for i, (code, name) in enumerate(streets):
        requests = rng.randrange(200, 900)
        callbacks = rng.randrange(50, requests // 2)
        rates = {
            "requests": requests,
            "callbacks": callbacks,
            "response_rate": round(rng.uniform(0.8, 1.0), 4),
            "resolution_rate": round(rng.uniform(0.5, 0.95), 4),
            "satisfaction_rate": round(rng.uniform(0.6, 0.98), 4),
            "composite": round(rng.uniform(60, 95), 2),
        }
        aspects = {a: round(rng.uniform(10, 30), 1) for a in ASPECTS[:4]}
        aspects["bonus"] = round(rng.uniform(-3, 3), 1)
        street = {
            "code": code,
            "name": name,
            "internal": round(rng.uniform(60, 98), 2),
            "survey": None if i == len(streets) - 1 else round(rng.uniform(55, 99), 2),
            "survey_margin": round(rng.uniform(1, 4), 2),
            "survey_sample": 400,
            "hotline": rates["composite"],
            "aspects": aspects,
            "items": {},
            "rates": rates,
            "missing": ["party_build"] if i == 0 else [],
            "volume": requests,
        }
        street["composite"] = composite(street, PARTS)
        rows.append(street)
    for r in ranked(rows):
        r["rank_change"] = [2, -1, 0, 3, -4][int(r["code"][-1]) % 5]
        r["class"] = "先进" if r["rank"] <= 3 else ("整改" if (r["composite"] or 0) < 80 else None)
    out = sorted(rows, key=lambda r: (r["rank"], r["code"]))
    for r in out:
        r.pop("volume")
    return {
        "scheme": SCHEME,
        "period": {"label": label, "since": since, "until": until},
        "parts": dict(PARTS),
        "published": None,
        "streets": out,
    }


def what_if(res: dict[str, Any], parts: dict[str, float]) -> dict[str, Any]:
    """{current, what_if}: each street's rank and composite under the Result's weights and
    under `parts`."""

    def rows(weights: dict[str, float]) -> list[dict[str, Any]]:
        made = [
            {
                "code": s["code"],
                "name": s["name"],
                "composite": composite(s, weights),
                "volume": s["rates"]["requests"],
            }
            for s in res["streets"]
        ]
        out = ranked(made)
        for r in out:
            r.pop("volume")
        return out

    return {"current": rows(res["parts"]), "what_if": rows(parts)}


PUBLIC = ("code", "name", "rank", "rank_change", "class", "composite")


def commander_view(res: dict[str, Any], own: str, version: int = 1) -> dict[str, Any]:
    """The published Result as a commander reads it: every street's public row, its own
    street's detail only."""
    streets = [s if s["code"] == own else {k: s[k] for k in PUBLIC} for s in res["streets"]]
    published = {
        "id": 1,
        "version": version,
        "published_at": "2026-12-01T09:00:00+08:00",
        "published_by": "district-chief",
    }
    return {**res, "published": published, "streets": streets}


@dataclass
class Stub:
    """The evaluation API as the page calls it, from `answer` (None: 404, not published)."""

    answer: dict[str, Any] | None
    allow_what_if: bool = True
    asked: list[str] = field(default_factory=list)
    published: list[dict[str, Any]] = field(default_factory=list)

    def handle(self, route: Any) -> None:
        request = route.request
        url = urlsplit(request.url)
        self.asked.append(f"{request.method} {url.path}?{url.query}")
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if url.path == "/api/evaluation/schemes":
            return self._json(route, [{**SCHEME, "body": {"period": {"kind": "month"}}}])
        if url.path.endswith("/versions"):
            return self._json(route, {"versions": self.published})
        if url.path.endswith("/publish") and request.method == "POST":
            assert self.answer is not None
            version = len(self.published) + 1
            entry = {
                "id": version,
                "version": version,
                "published_at": "2026-12-01T09:00:00+08:00",
                "published_by": "district-chief",
            }
            self.published.append(entry)
            self.answer = {**self.answer, "published": entry}
            return self._json(route, entry, 201)
        if url.path.endswith("/what-if"):
            if not self.allow_what_if or self.answer is None:
                return self._json(route, {"error": "forbidden", "message": "无权"}, 403)
            parts = {p: float(query[p]) for p in PARTS}
            return self._json(route, what_if(self.answer, parts))
        if self.answer is None:
            return self._json(route, {"error": "not_found", "message": "本期尚未发布"}, 404)
        return self._json(route, self.answer)

    @staticmethod
    def _json(route: Any, body: Any, status: int = 200) -> None:
        route.fulfill(
            status=status,
            content_type="application/json",
            body=json.dumps(body, ensure_ascii=False),
        )


def stub(page: Any, answer: dict[str, Any] | None, allow_what_if: bool = True) -> Stub:
    """Answer the page's evaluation API calls (not the drill-down) from `answer`."""
    s = Stub(answer, allow_what_if)
    page.route("**/api/evaluation/schemes*", s.handle)
    page.route("**/api/evaluation/periods/**", s.handle)
    return s
