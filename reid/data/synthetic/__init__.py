"""An embedded synthetic video ReID dataset written in the exact MARS layout.

Why it exists: every part of ``reid`` (MARS reader, samplers, trainer, evaluator, noise studies)
needs a dataset that is small, always available offline and still *meaningful*: identities that a
network can learn from appearance, camera changes it must be invariant to, and the adverse cases
that example weighting and quality-aware aggregation are about (blur, occlusion, truncation, a
second person, background-only frames), at controlled rates. Real MARS (Zheng et al., ECCV 2016)
cannot be shipped; this generator draws people procedurally with OpenCV instead.

Layout written: exactly the MARS layout of :mod:`reid.data.mars_format` (``bbox_train/``,
``bbox_test/`` with junk pid -1 and distractors pid 0, ``info/`` name lists, track tables and query
rows, with the official files' ``.mat`` dtypes), plus two files of its own::

    <out>/SYNTHETIC.json                 generator version + parameters (the cache stamp)
    <out>/synthetic_annotations.csv      per-frame ground truth: view and adverse case

What the pictures contain (all anti-aliased: drawn at 2x with ``cv2.LINE_AA`` then area-resized):

* people: head (skin, hair, optional hat), torso with the identity's upper colour and pattern
  (plain, horizontal/vertical stripes, checks, chest logo), long or short sleeves, trousers /
  shorts / skirt in the lower colour, shoes, optional backpack or shoulder bag on one side, body
  build (height and width scale). About a quarter of the identities are *twins* of another
  identity of the same split: same upper colour and pattern, different lower body and accessory.
* cameras: a textured background per camera (brick wall, street facade, park, indoor tiles), an
  illumination gain, a mild per-channel colour cast, gamma, sensor noise, a scale, and a viewpoint
  preference (front / back / left / right changes which side a bag is on and hides the chest
  logo from behind).
* tracklets: walking motion (leg and arm swing phase), position jitter and drift, background pan.
* adverse runs inside tracklets (a contiguous run of frames each): motion blur, occlusion (pole or
  box), truncation (a crop that cuts the body), a second person partly overlapping, background
  only. The per-tracklet probabilities are ``adverse_rates``; with the defaults about 10% of the
  frames are adverse.
* test-split junk (pid -1): background-only or heavily truncated fragments; distractors (pid 0):
  people who are not among the test identities.

Determinism: every identity, camera and tracklet draws from its own ``np.random.default_rng``
stream keyed by ``(seed, stream tag, index...)`` (:mod:`.streams`), frames are written with a
fixed JPEG quality, so the same parameters give byte-identical files whatever the number of
worker processes.

Modules, low to high: :mod:`.streams` (random streams), :mod:`.params` (parameters),
:mod:`.appearance` (people and cameras), :mod:`.drawing` (scenes, people), :mod:`.planning`
(pid split, tracklet plans, index, queries), :mod:`.rendering` (frames, adverse cases,
photometry), :mod:`.writer` (the MARS files, stamp, annotations), :mod:`.cache`
(:func:`ensure_synthetic_mars`), :mod:`.preview` (contact sheet).
"""

from __future__ import annotations

from reid.data.synthetic.appearance import CameraSpec, PersonSpec, camera_spec, person_spec
from reid.data.synthetic.cache import DEFAULT_DIRNAME, default_dataset_dir, ensure_synthetic_mars, read_stamp
from reid.data.synthetic.drawing import camera_background, draw_person
from reid.data.synthetic.params import ADVERSE_KINDS, GENERATOR_VERSION, VIEWS, SyntheticMarsParams
from reid.data.synthetic.planning import TrackletPlan, build_index, choose_queries, plan_dataset, split_pids
from reid.data.synthetic.preview import make_contact_sheet
from reid.data.synthetic.rendering import render_frame, render_tracklet
from reid.data.synthetic.writer import ANNOTATIONS_NAME, STAMP_NAME, make_synthetic_mars

__all__ = [
    "ADVERSE_KINDS",
    "VIEWS",
    "GENERATOR_VERSION",
    "STAMP_NAME",
    "ANNOTATIONS_NAME",
    "DEFAULT_DIRNAME",
    "SyntheticMarsParams",
    "PersonSpec",
    "CameraSpec",
    "TrackletPlan",
    "person_spec",
    "camera_spec",
    "camera_background",
    "draw_person",
    "plan_dataset",
    "split_pids",
    "build_index",
    "choose_queries",
    "render_frame",
    "render_tracklet",
    "make_synthetic_mars",
    "ensure_synthetic_mars",
    "default_dataset_dir",
    "read_stamp",
    "make_contact_sheet",
]
