"""A sitting / standing / walking_running subset of MS-COCO, labelled from the captions, plus person
masks and boxes from the instance annotations (for the explanation metrics).

Caption rules (``caption_activity``), applied to the lower-cased words of one caption:

1. Activity verbs: ``sit, sits, sitting, seated`` -> sitting; ``stand, stands, standing`` -> standing;
   ``walk, walks, walking, run, runs, running, jog, jogs, jogging, stroll, strolls, strolling`` ->
   walking_running.
2. Noun uses are skipped: the verb right after a determiner or a noun-modifier (``a fruit stand``,
   ``the stands``, ``a home run``, ``ski run``), or right before a compound head (``sitting area``,
   ``walking path``, ``running water``, ``standing room``).
3. Subject: the nearest noun before the verb when only auxiliaries / relatives stand between them
   (``cat is sitting``, ``people who are walking``), except an object the person has (after ``with,
   on, under, in, holding, carrying, wearing, using``: ``a man on a snowboard standing``, ``a woman
   holding an umbrella walking``: the person is the subject); otherwise the first noun of the caption
   before the verb. Nouns come from three word lists: persons (man, woman, person, people, boy, girl, child,
   kid, player, guy, lady, skier, ...), animals (cat, dog, horse, giraffe, bird, ...) and objects that
   "sit"/"stand" in captions (vase, clock, bus, train, sign, bench, ...). The verb counts only when
   its subject is a person word.
4. A verb with only determiners / numbers before it (``Sitting on a bench is a man``, ``A seated
   man``) counts when the caption has a person word and no animal word.
5. One activity per caption: verbs after a clause marker that follows the first counted verb are
   ignored (``a man sitting on a bench as people walk by`` -> sitting); when the counted verbs still
   name two activities (``people standing and sitting``) the caption gives ``None``.

``image_activity`` takes the majority over an image's (usually five) captions.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import random
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..labels import CLASSES
from .datasets import Sample, SampleList, write_manifest
from .io import read_json_file

log = logging.getLogger(__name__)

VERBS: dict[str, str] = {
    **dict.fromkeys(("sit", "sits", "sitting", "seated"), "sitting"),
    **dict.fromkeys(("stand", "stands", "standing"), "standing"),
    **dict.fromkeys(
        ("walk", "walks", "walking", "run", "runs", "running", "jog", "jogs", "jogging", "stroll", "strolls", "strolling"),
        "walking_running",
    ),
}

PERSON_WORDS = frozenset(
    """man men woman women person people persons boy boys girl girls child children kid kids player players
    guy guys lady ladies skier skiers snowboarder snowboarders skateboarder skateboarders surfer surfers
    gentleman gentlemen toddler toddlers baby babies adult adults teen teens teenager teenagers student students
    crowd family couple friends friend batter pitcher catcher umpire rider riders biker bikers cyclist cyclists
    athlete athletes runner runners jogger joggers pedestrian pedestrians tourist tourists officer officers
    policeman policemen cop cops soldier soldiers worker workers chef chefs cook cooks someone somebody individual
    individuals father mother dad mom son daughter brother sister bride groom businessman businessmen cowboy
    fans spectators audience team teammates male males female females youngster youngsters infant passenger
    passengers customer customers shopper shoppers vendor vendors fisherman fishermen hiker hikers walker
    walkers he she human humans player's men's women's skater skaters performer performers musician
    musicians fielder outfielder golfer golfers mother's father's lady's guy's man's woman's boy's girl's
    doctor nurse farmer police""".split()
)

ANIMAL_WORDS = frozenset(
    """cat cats kitten kittens kitty dog dogs puppy puppies pup horse horses pony ponies cow cows cattle sheep
    lamb lambs goat goats elephant elephants giraffe giraffes zebra zebras bear bears bird birds pigeon pigeons
    seagull seagulls gull gulls duck ducks goose geese swan swans animal animals calf calves bull bulls deer
    monkey monkeys squirrel squirrels rabbit rabbits bunny mouse owl owls chicken chickens rooster parrot
    parrots penguin penguins ostrich flamingo flamingos heron crane cranes hawk eagle pelican pelicans herd
    flock""".split()
)

OBJECT_WORDS = frozenset(
    """vase vases clock clocks bus buses train trains car cars truck trucks motorcycle motorcycles bicycle
    bicycles bike bikes boat boats plane planes airplane airplanes jet jets vehicle vehicles bench benches
    chair chairs couch sofa table tables bottle bottles cup cups mug mugs glass glasses plate plates bowl bowls
    sandwich sandwiches pizza pizzas cake cakes donut donuts doughnut doughnuts banana bananas apple apples
    orange oranges food laptop laptops computer computers tv television monitor phone cellphone lamp sign signs
    tower towers building buildings statue statues hydrant toilet toilets sink sinks refrigerator fridge oven
    microwave suitcase suitcases luggage bag bags box boxes toy toys doll dolls kite kites umbrella umbrellas
    pole poles light lights streetlight tree trees teddy bed beds desk desks book books remote scissors knife
    fork spoon skateboard skateboards surfboard surfboards skis snowboard board boards tray basket container
    pot pan dish dishes meal vegetables fruit hotdog hotdogs drink drinks water cart wagon carriage bag
    backpack racket bat ball frisbee tractor van taxi cab engine locomotive trolley tram scooter
    structure post aircraft airliner jetliner helicopter carrot carrots broccoli""".split()
)

# "a couple of", "a pair of", "a group of": a quantity, the noun after "of" is the subject.
_QUANTITY_NOUNS = frozenset("couple pair group crowd family team bunch herd flock".split())

# Words between a subject noun and its verb that keep it the verb's direct subject.
_LINK = frozenset(
    "is are was were be been being who that which also just still all both each and or there "
    "currently casually quietly calmly alone together happily".split()
)
# "<person> with/on/holding ... <object> <verb>": the object belongs to the person, who is the subject.
_ATTACHED = frozenset("with on under in holding carrying wearing using".split())
_DETERMINERS = frozenset("a an the this that these those its his her their my our your one some".split())
# "<modifier> stand/run" is a noun: a fruit stand, a home run.
_NOUN_MODIFIERS = frozenset(
    """fruit hot dog home ski food taxi tv night music vegetable produce flower concession hotdog
    market coffee lemonade newspaper news magazine display microphone mic tripod kiosk test trial dry
    side board cat sky""".split()
)
# "<verb> <head>" is a noun phrase: a sitting area, running water.
_COMPOUND_HEADS = frozenset(
    """area areas room rooms path paths trail trails track tracks shoe shoes stick sticks cane canes water
    desk board boards lane lanes bridge track machine gear outfit outfits clothes shorts surface position
    positions""".split()
)

# After a counted verb, a verb following one of these belongs to another clause / person.
_CLAUSE_MARKERS = frozenset("as while when where watching watches watch past near behind beside by whilst".split())
# Words that may precede a subject-less verb ("A seated man", "Two seated women").
_LEADING = _DETERMINERS | frozenset("two three four five several many few older old young elderly".split())

_WORD = re.compile(r"[a-z]+(?:'s)?")


def _noun_kind(words: list[str], k: int) -> str | None:
    word = words[k]
    if word in _QUANTITY_NOUNS and k + 1 < len(words) and words[k + 1] == "of":
        return None  # "a couple of carrots", "a group of people": the noun after "of" counts
    if word in PERSON_WORDS:
        return "person"
    if word in ANIMAL_WORDS:
        return "animal"
    if word in OBJECT_WORDS:
        return "object"
    return None


def _verb_subject(words: list[str], i: int) -> str | None:
    """Kind of the subject of the verb at ``words[i]``: person / animal / object / None (none found)."""
    first = next((k for k in range(i) if _noun_kind(words, k)), None)
    j = i - 1
    while j >= 0 and words[j] in _LINK:
        j -= 1
    kind = _noun_kind(words, j) if j >= 0 else None
    # "a man on a snowboard standing", "a woman holding an umbrella walking": the object is not the subject
    if (
        kind == "object" and first is not None and first < j and _noun_kind(words, first) == "person"
        and any(w in _ATTACHED for w in words[first + 1 : j])
    ):
        return "person"
    if kind:
        return kind
    return _noun_kind(words, first) if first is not None else None


def caption_activity(caption: str) -> str | None:
    """The activity one caption states for a person, or ``None`` (rules in the module docstring)."""
    words = _WORD.findall(caption.lower())
    has_person = any(_noun_kind(words, k) == "person" for k in range(len(words)))
    has_animal = any(w in ANIMAL_WORDS for w in words)
    found: set[str] = set()
    first_verb = 0
    for i, w in enumerate(words):
        act = VERBS.get(w)
        if act is None:
            continue
        prev = words[i - 1] if i else ""
        nxt = words[i + 1] if i + 1 < len(words) else ""
        if (
            w in ("stand", "stands", "run", "runs", "sit", "walk", "walks", "jog", "stroll")
            and (prev in _DETERMINERS or prev in _NOUN_MODIFIERS)
            and not (w == "walk" and prev in ("a", "the"))  # "taking a walk" is walking
        ):
            continue
        if prev in _NOUN_MODIFIERS and w in ("stand", "stands", "run", "runs"):
            continue
        if nxt in _COMPOUND_HEADS and w.endswith("ing"):
            continue
        if found and any(m in _CLAUSE_MARKERS for m in words[first_verb:i]):
            break  # "a man sitting on a bench as people walk by": the first clause names the activity
        subject = _verb_subject(words, i)
        if subject == "person" or (
            subject is None and has_person and not has_animal and all(x in _LEADING for x in words[:i])
        ):
            if not found:
                first_verb = i
            found.add(act)
    return found.pop() if len(found) == 1 else None


def image_activity(captions: Sequence[str], min_agree: int = 3) -> str | None:
    """The activity at least ``min_agree`` captions state, with no other activity as frequent."""
    votes = Counter(a for a in map(caption_activity, captions) if a is not None)
    if not votes:
        return None
    (best, n), *others = votes.most_common()
    if n < min_agree or (others and others[0][1] == n):
        return None
    return best


# --------------------------------------------------------------------------------------------
# annotation files
# --------------------------------------------------------------------------------------------


def read_coco_json(path: str | Path, what: str) -> dict:
    """A COCO ``what`` (captions / instances / keypoints) JSON with its 'images' and 'annotations'
    lists, else one line."""
    doc = read_json_file(path, what)
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list) or not isinstance(doc.get("annotations"), list):
        raise DataError(f"{path}: not a COCO {what} file (needs 'images' and 'annotations' lists)")
    return doc


@lru_cache(maxsize=8)
def _coco_cached(path: str, mtime_ns: int, size: int):
    from pycocotools.coco import COCO

    doc = read_coco_json(path, "instances")
    coco = COCO()
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco.dataset = doc
        coco.createIndex()
    return coco


def load_coco(instances_json) -> Any:
    """A pycocotools ``COCO`` for a path (cached per path and modification time) or the object itself."""
    if not isinstance(instances_json, (str, Path)):
        return instances_json
    p = os.path.abspath(instances_json)
    try:
        st = os.stat(p)
    except OSError:
        raise DataError(f"{instances_json}: instances file not found") from None
    return _coco_cached(p, st.st_mtime_ns, st.st_size)


def _person_category_ids(coco) -> list[int]:
    ids = [c["id"] for c in coco.dataset.get("categories", []) if c.get("name") == "person"]
    return ids or [1]


def _image_entry(coco, file_name: str | Path) -> dict:
    name = Path(file_name).name
    index = getattr(coco, "_har_by_name", None)
    if index is None:
        index = {img["file_name"]: img for img in coco.dataset["images"]}
        coco._har_by_name = index
    if name not in index:
        raise DataError(f"{name}: image not in the COCO annotation file")
    return index[name]


def _person_anns(coco, img: dict, prominent_only: bool, min_person_area: float) -> list[dict]:
    anns = coco.loadAnns(coco.getAnnIds(imgIds=[img["id"]], catIds=_person_category_ids(coco)))
    if prominent_only:
        full = float(img["width"] * img["height"])
        anns = [a for a in anns if not a.get("iscrowd") and a["area"] / full >= min_person_area]
    return anns


def person_mask(instances_json_or_COCO, file_name: str | Path, prominent_only: bool = False,
                min_person_area: float = 0.05) -> np.ndarray:
    """HxW bool union of the person masks of one image (all-False when it has no person).

    ``prominent_only`` keeps persons covering at least ``min_person_area`` of the image."""
    coco = load_coco(instances_json_or_COCO)
    img = _image_entry(coco, file_name)
    mask = np.zeros((img["height"], img["width"]), dtype=bool)
    for a in _person_anns(coco, img, prominent_only, min_person_area):
        if a.get("segmentation"):
            mask |= coco.annToMask(a).astype(bool)
    return mask


def person_boxes(instances_json_or_COCO, file_name: str | Path, prominent_only: bool = False,
                 min_person_area: float = 0.05) -> list[tuple[float, float, float, float]]:
    """Person boxes ``(x0, y0, x1, y1)`` in pixels of one image, largest first."""
    coco = load_coco(instances_json_or_COCO)
    img = _image_entry(coco, file_name)
    anns = sorted(_person_anns(coco, img, prominent_only, min_person_area), key=lambda a: -a["area"])
    return [(x, y, x + w, y + h) for x, y, w, h in (a["bbox"] for a in anns)]


# --------------------------------------------------------------------------------------------
# subset builder
# --------------------------------------------------------------------------------------------


def _single_person_ids(docs: Sequence[dict], min_person_area: float, min_keypoints: int,
                       other_max: float = 0.25) -> set[int]:
    """Images with exactly one prominent person: area >= ``min_person_area`` of the image (and, with
    keypoints, >= ``min_keypoints`` labelled keypoints); every other person (crowd regions included)
    is smaller than ``other_max`` x that person's area."""
    sizes = {}
    persons: dict[int, list[dict]] = defaultdict(list)
    for doc in docs:
        cats = [c["id"] for c in doc.get("categories", []) if c.get("name") == "person"] or [1]
        for img in doc["images"]:
            sizes[img["id"]] = float(img["width"] * img["height"])
        for a in doc["annotations"]:
            if a.get("category_id") in cats:
                persons[a["image_id"]].append(a)
    ok = set()
    for image_id, anns in persons.items():
        # the same person can appear in instances and keypoints files: merge by annotation id
        merged: dict[Any, dict] = {}
        for a in anns:
            merged.setdefault(a.get("id", id(a)), {}).update(a)
        anns = list(merged.values())
        full = sizes.get(image_id)
        if not full:
            continue
        big = [a for a in anns if not a.get("iscrowd") and a["area"] / full >= min_person_area]
        if len(big) != 1:
            continue
        main = big[0]
        if "num_keypoints" in main and main["num_keypoints"] < min_keypoints:
            continue
        if all(a is main or a["area"] < other_max * main["area"] for a in anns):
            ok.add(image_id)
    return ok


def _license_names(doc: dict) -> dict[int, str]:
    out = {}
    for lic in doc.get("licenses", []):
        name, url = lic.get("name", ""), lic.get("url", "")
        out[lic.get("id")] = f"{name} ({url})" if url else name
    return out


def select_coco_images(captions_json: str | Path | dict, min_agree: int = 3) -> dict[str, list[int]]:
    """Image ids per class whose captions agree on one activity (no image files needed)."""
    doc = captions_json if isinstance(captions_json, dict) else read_coco_json(captions_json, "captions")
    caps: dict[int, list[str]] = defaultdict(list)
    for a in doc["annotations"]:
        if isinstance(a.get("caption"), str):
            caps[a["image_id"]].append(a["caption"])
    return label_by_captions(caps, min_agree)


def label_by_captions(captions: dict, min_agree: int) -> dict[str, list]:
    """Class -> the keys (image ids or file names, sorted) whose captions agree on that activity
    (``image_activity``); the COCO builder and the caption builder label photos the same way."""
    out: dict[str, list] = {c: [] for c in CLASSES}
    for key in sorted(captions):
        act = image_activity(captions[key], min_agree=min_agree)
        if act:
            out[act].append(key)
    return out


def build_coco_subset(
    images_dir: str | Path,
    captions_json: str | Path,
    instances_json: str | Path | None = None,
    keypoints_json: str | Path | None = None,
    per_class: int = 95,
    seed: int = 0,
    single_person: bool = False,
    min_person_area: float = 0.05,
    min_agree: int = 3,
    out_manifest: str | Path | None = None,
    min_keypoints: int = 8,
    balance: bool = True,
) -> list[Sample]:
    """Caption-labelled, class-balanced COCO subset (source ``coco``, group = image id).

    Candidates: images whose captions agree (``image_activity``), whose file is in ``images_dir``
    and, with ``single_person``, that show exactly one prominent person (instances and/or keypoints
    needed). Balancing: a seeded sample of ``per_class`` images per class when every class has that
    many, else of ``min(per_class, smallest class)``; a class with no candidate is a ``DataError``.
    ``balance=False`` keeps up to ``per_class`` per class instead. The returned ``SampleList.info``
    (also logged) says which, with the per-class candidate counts. ``out_manifest`` writes a manifest
    CSV (path, label, group = image id, source = coco, license = the image's licence name and URL).
    """
    images_p = Path(images_dir)
    if not images_p.is_dir():
        raise DataError(f"{images_dir}: COCO images folder not found")
    doc = read_coco_json(captions_json, "captions")
    per_class_ids = select_coco_images(doc, min_agree=min_agree)
    info: dict[str, Any] = {"captioned": {c: len(v) for c, v in per_class_ids.items()}}
    if single_person:
        if instances_json is None and keypoints_json is None:
            raise DataError("single_person needs instances_json or keypoints_json (person areas)")
        docs = [read_coco_json(p, what) for p, what in ((instances_json, "instances"), (keypoints_json, "keypoints")) if p]
        keep = _single_person_ids(docs, min_person_area, min_keypoints)
        per_class_ids = {c: [i for i in ids if i in keep] for c, ids in per_class_ids.items()}
        info["single_person"] = {c: len(v) for c, v in per_class_ids.items()}
    images = {img["id"]: img for img in doc["images"]}
    present = {f.name for f in images_p.iterdir()}
    listed = [img["file_name"] for img in doc["images"]]
    if listed and not any(n in present for n in listed):
        raise DataError(f"{images_dir}: none of the {len(listed)} images of {Path(captions_json).name} are in this folder")
    missing = {c: [i for i in ids if images.get(i, {}).get("file_name") not in present] for c, ids in per_class_ids.items()}
    per_class_ids = {c: [i for i in ids if i in images and images[i]["file_name"] in present] for c, ids in per_class_ids.items()}
    info["missing_files"] = sum(len(v) for v in missing.values())
    info["candidates"] = {c: len(v) for c, v in per_class_ids.items()}
    smallest = min(info["candidates"].values())
    if balance:
        if smallest == 0:
            empty = [c for c, k in info["candidates"].items() if k == 0]
            raise DataError(
                f"{images_dir}: no COCO image qualifies for class(es) {', '.join(empty)} "
                f"(candidates {info['candidates']}); cannot balance"
            )
        n = min(per_class, smallest)
        take = {c: n for c in CLASSES}
        info["balance"] = (
            f"{per_class} per class (every class has enough)" if n == per_class
            else f"{n} per class = smallest class ({min(info['candidates'], key=info['candidates'].get)}), "
            f"under per_class={per_class}"
        )
    else:
        take = {c: min(per_class, len(per_class_ids[c])) for c in CLASSES}
        info["balance"] = f"not balanced: up to {per_class} per class"
        if not any(take.values()):
            raise DataError(f"{images_dir}: no COCO image qualifies (candidates {info['candidates']})")
    info["selected"] = dict(take)
    rng = random.Random(seed)
    licenses = _license_names(doc)
    samples = SampleList(info=info)
    for c in CLASSES:
        for image_id in sorted(rng.sample(per_class_ids[c], take[c])):
            img = images[image_id]
            samples.append(
                Sample(
                    path=os.path.abspath(images_p / img["file_name"]),
                    label=c,
                    group=str(image_id),
                    source="coco",
                    license=licenses.get(img.get("license"), ""),
                )
            )
    log.info("COCO subset: %s; candidates %s", info["balance"], info["candidates"])
    if out_manifest is not None:
        write_manifest(samples, out_manifest)
        info["manifest"] = str(out_manifest)
    return samples
