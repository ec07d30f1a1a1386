"""How common the most used Danbooru general tags are, to tell generic caption tags from a dataset's own.

Kohya's `ss_tag_frequency` counts the tags of a LoRA's training captions. Most
of them (`1girl`, `solo`, `smile`, …) describe almost every anime image and
say nothing about what the LoRA learnt; the trigger word is the tag that is
frequent in this dataset and rare everywhere else. `inspect.suggest_trigger_words`
weighs each tag tf-idf style: its share of the dataset times `log(1 / share
of all Danbooru posts)`.

Source: the general tags at the top of Danbooru's public tag list ordered by
post count (https://danbooru.donmai.us/tags?search[order]=count&search[category]=0),
plus the two resolution meta tags,
with post counts rounded to two significant figures, as of 2024, out of about
8.5 million posts. They were written in by hand (nothing is fetched at run
time) and are approximate: only their order of magnitude matters here.
Danbooru writes tags with underscores; captions use spaces, and lookups
ignore the difference and case.
"""
from __future__ import annotations

import math

TOTAL_POSTS = 8_500_000

# tag: approximate number of Danbooru posts carrying it.
POST_COUNTS: dict[str, int] = {
    "1girl": 6_000_000, "solo": 5_000_000, "long_hair": 3_700_000, "breasts": 3_000_000,
    "looking_at_viewer": 2_900_000, "smile": 2_600_000, "blush": 2_500_000, "open_mouth": 2_000_000,
    "short_hair": 1_900_000, "bangs": 1_600_000, "blue_eyes": 1_400_000, "shirt": 1_400_000,
    "simple_background": 1_400_000, "multiple_girls": 1_300_000, "blonde_hair": 1_300_000,
    "brown_hair": 1_300_000, "black_hair": 1_300_000, "skirt": 1_200_000, "large_breasts": 1_200_000,
    "hair_ornament": 1_200_000, "1boy": 1_200_000, "long_sleeves": 1_100_000, "red_eyes": 1_100_000,
    "white_background": 1_000_000, "closed_mouth": 1_000_000, "dress": 1_000_000, "holding": 1_000_000,
    "thighhighs": 1_000_000, "hair_between_eyes": 900_000, "medium_breasts": 900_000, "gloves": 900_000,
    "navel": 900_000, "jewelry": 900_000, "bow": 900_000, "hat": 900_000, "sitting": 800_000,
    "animal_ears": 800_000, "cleavage": 800_000, "ribbon": 800_000, "brown_eyes": 800_000,
    "very_long_hair": 750_000, "outdoors": 700_000, "upper_body": 700_000, "standing": 700_000,
    "jacket": 700_000, "2girls": 700_000, "closed_eyes": 650_000, "green_eyes": 650_000,
    "purple_eyes": 600_000, "school_uniform": 600_000, "twintails": 600_000, "tail": 600_000,
    "underwear": 600_000, "full_body": 550_000, "white_shirt": 550_000, "collarbone": 550_000,
    "yellow_eyes": 500_000, "weapon": 500_000, "sky": 500_000, "day": 500_000, "hair_bow": 500_000,
    "ponytail": 500_000, "male_focus": 500_000, "cowboy_shot": 480_000, "sweat": 480_000,
    "bare_shoulders": 480_000, "purple_hair": 450_000, "pink_hair": 450_000, "sleeveless": 450_000,
    "silver_hair": 450_000, "white_hair": 450_000, "blue_hair": 450_000, "red_hair": 420_000,
    "swimsuit": 400_000, "braid": 400_000, "nude": 400_000, "pantyhose": 380_000, "cloud": 380_000,
    "one_eye_closed": 380_000, "hair_ribbon": 360_000, "boots": 360_000, "monochrome": 360_000,
    "greyscale": 340_000, "small_breasts": 340_000, "food": 340_000, "teeth": 330_000,
    "parted_lips": 330_000, "frills": 330_000, "flower": 330_000, "indoors": 320_000,
    "hair_flower": 300_000, "pleated_skirt": 300_000, "black_gloves": 300_000, "comic": 300_000,
    "tongue": 300_000, "shoes": 300_000, "sidelocks": 300_000, "multicolored_hair": 300_000,
    "green_hair": 280_000, "holding_weapon": 280_000, "ahoge": 280_000, "necktie": 280_000,
    "thighs": 270_000, "tongue_out": 260_000, "wings": 260_000, "black_thighhighs": 260_000,
    "grey_hair": 250_000, "glasses": 250_000, "multiple_boys": 250_000, "lying": 250_000,
    "fang": 250_000, "belt": 240_000, "solo_focus": 240_000, "signature": 240_000,
    "water": 230_000, "shorts": 230_000, "star_(symbol)": 230_000, "tree": 230_000,
    "sword": 230_000, "hand_up": 220_000, "hairband": 220_000, "artist_name": 220_000,
    "from_side": 210_000, "detached_sleeves": 210_000, "pants": 210_000, "choker": 200_000,
    "horns": 200_000, "earrings": 200_000, "alternate_costume": 200_000, "nipples": 600_000,
    "open_clothes": 400_000, "dated": 200_000, "heart": 200_000, "blue_sky": 200_000,
    "virtual_youtuber": 600_000, "looking_back": 170_000, "socks": 170_000, "grass": 150_000,
    "dog": 110_000, "cat": 150_000, "portrait": 120_000, "happy": 120_000,
    "night": 160_000, "realistic": 60_000,
    # Meta tags (resolution), which scraped captions carry too.
    "highres": 5_600_000, "absurdres": 1_700_000,
}

# A tag not in the table is assumed no more common than this: rarer than any
# listed tag, so a dataset's own trigger word always outweighs them.
UNLISTED_POSTS = 20_000
# Tags on at least this share of all posts (about 85,000 posts) are generic
# enough that they are never suggested as trigger words.
GENERIC_SHARE = 0.01

_BY_KEY = {tag.replace("_", " ").casefold(): n for tag, n in POST_COUNTS.items()}


def post_share(tag: str) -> float:
    """The share of Danbooru posts carrying `tag` (an upper bound for tags the table does not list)."""
    key = " ".join(tag.replace("_", " ").split()).casefold()
    return _BY_KEY.get(key, UNLISTED_POSTS) / TOTAL_POSTS


def is_generic(tag: str) -> bool:
    return post_share(tag) >= GENERIC_SHARE


def specificity(tag: str) -> float:
    """The idf half of the weight: `log(1 / share of posts)`, higher for rarer tags."""
    return math.log(1.0 / post_share(tag))
