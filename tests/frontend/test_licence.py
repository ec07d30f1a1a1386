"""The licence box labels each permission by what it governs, in Civitai's terms."""
from __future__ import annotations

import pytest

from frontend.templatetags.mergeworks import LICENCE_LABELS, licence_terms
from frontend.upload_views import UploadDetailsForm
from tests.support.builders import make_published_model

pytestmark = pytest.mark.django_db


def test_a_merge_shows_merging_as_share_merges_not_as_generating_on_the_site(client, alice):
    merged = make_published_model(alice, "Blend", checkpoint_type="Merge", allow_commercial_use=["Image"],
                                  allow_derivatives=True, allow_different_license=False)
    html = client.get(f"/models/{merged.pk}/{merged.slug}/").content.decode()
    assert "Run on Mergeworks" not in html
    assert "Allowed: </span>Share merges using this model" in html
    assert "Not allowed: </span>Generate images with it on Mergeworks" in html
    assert "Allowed: </span>Sell images they generate" in html
    assert "Not allowed: </span>Run on services that generate images for money" in html
    assert "Not allowed: </span>Have different permissions when sharing merges" in html
    assert "is governed by “Share merges using this model”" in html


def test_civitai_order_and_one_wording_for_the_page_and_the_upload_form(alice):
    model = make_published_model(alice, "Every Permission", allow_commercial_use=["Image", "RentCivit", "Rent", "Sell"])
    assert [t.label for t in licence_terms(model)] == [
        "Use the model without crediting the creator",
        "Sell images they generate",
        "Generate images with it on Mergeworks",
        "Run on services that generate images for money",
        "Share merges using this model",
        "Sell this model or merges using this model",
        "Have different permissions when sharing merges",
    ]
    assert all(t.allowed for t in licence_terms(model))
    form = UploadDetailsForm(user=alice)
    assert form.fields["allow_derivatives"].label == LICENCE_LABELS["allow_derivatives"]
    assert dict(form.fields["allow_commercial_use"].choices)["RentCivit"] == "Generate images with it on Mergeworks"
