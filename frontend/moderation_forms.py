"""Forms of the moderation pages: they validate the shape; rules are the moderation services'."""
from __future__ import annotations

from django import forms

from hub.moderation.models import ModerationAction, Report
from hub.moderation.services import MAX_DETAILS, MAX_REASON


class ReportForm(forms.Form):
    reason = forms.ChoiceField(choices=Report.Reason.choices, widget=forms.RadioSelect, label="What is wrong?")
    details = forms.CharField(
        required=False, max_length=MAX_DETAILS, widget=forms.Textarea(attrs={"rows": 4}),
        help_text="Required for “Other”. Anything that helps a moderator: links, what is wrong, whom it concerns.",
    )


class ActionForm(forms.Form):
    target_kind = forms.CharField(widget=forms.HiddenInput, max_length=16)
    target_id = forms.CharField(widget=forms.HiddenInput, max_length=64)
    action = forms.ChoiceField(choices=ModerationAction.Action.choices)
    reason = forms.CharField(max_length=MAX_REASON, widget=forms.Textarea(attrs={"rows": 2}),
                             help_text="The owner is told this, and the audit log keeps it.")
    nsfw_level = forms.TypedChoiceField(
        required=False, coerce=int, empty_value=None, label="NSFW level",
        choices=[("", "—"), (1, "PG"), (2, "PG-13"), (4, "R"), (8, "X")],
    )


class ClaimForm(forms.Form):
    claimant_name = forms.CharField(max_length=200, label="Your name")
    claimant_email = forms.EmailField(label="Your email", help_text="We write to you about the claim here.")
    url = forms.CharField(max_length=2000, label="The page on this hub",
                          help_text="The address of the model, version, image or recipe you claim.")
    original_work = forms.CharField(
        max_length=MAX_DETAILS, widget=forms.Textarea(attrs={"rows": 5}), label="Your original work",
        help_text="What it is, and where and when you published it.",
    )
    good_faith = forms.BooleanField(
        label="I believe in good faith that this use is not authorised by the rights holder, its agent or the law, "
              "and the information in this claim is accurate.",
    )
