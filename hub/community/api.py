"""REST API v1 for the community layer: reviews, comments, follows, feed, notifications, favourites.

Reads are open (API keys need `read`); writes need a session or a key with
the `upload` scope. Anything under an object the caller cannot see answers
404, as the object itself does. Rate-limited writes answer 429 with Retry-After.
"""
from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import AuthenticationFailed, NotAuthenticated, NotFound, PermissionDenied, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from hub.accounts.auth import HasScope, bearer_token
from hub.accounts.services import InvalidApiKey
from hub.api.errors import error_body
from hub.api.negotiation import JsonOnlyNegotiation
from hub.api.pagination import cursor_int, decode_cursor, encode_cursor, page_metadata, parse_limit
from hub.api.permissions import ReadScopeIfKey
from hub.api.schemas import ErrorOut
from hub.catalog.api_serialize import iso
from hub.catalog.selectors import model_get_for, version_get_for
from hub.community import selectors, services
from hub.community.limits import RateLimited
from hub.community.models import Collection, Comment, Notification, Review
from merges.registry.selectors import recipe_get_for

_ERRORS = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut, 429: ErrorOut}


# --- bodies ------------------------------------------------------------------------------


class UserRefOut(serializers.Serializer):
    username = serializers.CharField()


class ReviewOut(serializers.Serializer):
    id = serializers.IntegerField()
    modelId = serializers.IntegerField()
    modelVersionId = serializers.IntegerField()
    user = UserRefOut()
    recommended = serializers.BooleanField()
    text = serializers.CharField(help_text="Markdown as written; render it sanitised")
    ownerReply = serializers.CharField(allow_null=True)
    ownerRepliedAt = serializers.DateTimeField(allow_null=True)
    createdAt = serializers.DateTimeField()
    updatedAt = serializers.DateTimeField()
    moderated = serializers.BooleanField(help_text="true on the author's own review a moderator hid (only they see it)")


class CommentOut(serializers.Serializer):
    id = serializers.IntegerField()
    user = UserRefOut(allow_null=True, help_text="null once deleted")
    text = serializers.CharField(allow_null=True, help_text="null once deleted")
    deleted = serializers.BooleanField()
    moderated = serializers.BooleanField(
        help_text="true on the placeholder of a comment a moderator hid or took down, kept for its replies "
                  "(user and text null), and on the author's own hidden comment")
    modelId = serializers.IntegerField(allow_null=True)
    modelVersionId = serializers.IntegerField(allow_null=True)
    recipeId = serializers.IntegerField(allow_null=True)
    recipeVersion = serializers.IntegerField(allow_null=True, help_text="The recipe version number it names")
    parentId = serializers.IntegerField(allow_null=True)
    createdAt = serializers.DateTimeField()
    editedAt = serializers.DateTimeField(allow_null=True)
    replies = serializers.ListField(child=serializers.DictField(), required=False)


class NotificationOut(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.ChoiceField(Notification.Kind.values)
    text = serializers.CharField()
    url = serializers.CharField()
    actor = UserRefOut(allow_null=True)
    read = serializers.BooleanField()
    createdAt = serializers.DateTimeField()


class FeedItemOut(serializers.Serializer):
    kind = serializers.ChoiceField(["version", "recipe", "recipe_version"])
    id = serializers.IntegerField()
    title = serializers.CharField()
    creator = UserRefOut()
    url = serializers.CharField()
    createdAt = serializers.DateTimeField()


def review_out(review: Review) -> dict[str, Any]:
    return {
        "id": review.pk,
        "modelId": review.model_id,
        "modelVersionId": review.version_id,
        "user": {"username": review.author.username},
        "recommended": review.recommended,
        "text": review.text,
        "ownerReply": review.owner_reply or None,
        "ownerRepliedAt": iso(review.owner_replied_at),
        "createdAt": iso(review.created_at),
        "updatedAt": iso(review.updated_at),
        "moderated": bool(review.moderation),
    }


def comment_out(comment: Comment, *, with_replies: bool = True) -> dict[str, Any]:
    deleted = comment.deleted_at is not None
    blank = deleted or getattr(comment, "moderated_placeholder", False)
    body = {
        "id": comment.pk,
        "user": None if blank else {"username": comment.author.username},
        "text": None if blank else comment.text,
        "deleted": deleted,
        "moderated": bool(comment.moderation),
        "modelId": comment.model_id,
        "modelVersionId": comment.version_id,
        "recipeId": comment.recipe_id,
        "recipeVersion": comment.recipe_version.number if comment.recipe_version_id else None,
        "parentId": comment.parent_id,
        "createdAt": iso(comment.created_at),
        "editedAt": iso(comment.edited_at),
    }
    if with_replies and comment.parent_id is None:
        body["replies"] = [comment_out(r, with_replies=False) for r in getattr(comment, "replies_list", [])]
    return body


def notification_out(n: Notification) -> dict[str, Any]:
    return {
        "id": n.pk,
        "kind": n.kind,
        "text": n.text,
        "url": n.url,
        "actor": {"username": n.actor.username} if n.actor_id else None,
        "read": n.read_at is not None,
        "createdAt": iso(n.created_at),
    }


# --- inputs ------------------------------------------------------------------------------


class ReviewIn(serializers.Serializer):
    recommended = serializers.BooleanField()
    text = serializers.CharField(required=False, allow_blank=True, default="", max_length=100_000)


class ReviewPatchIn(serializers.Serializer):
    recommended = serializers.BooleanField(required=False)
    text = serializers.CharField(required=False, allow_blank=True, max_length=100_000)


class TextIn(serializers.Serializer):
    text = serializers.CharField(allow_blank=True, max_length=100_000)


class CommentIn(serializers.Serializer):
    text = serializers.CharField(allow_blank=True, max_length=100_000)
    parentId = serializers.IntegerField(required=False, allow_null=True, help_text="Reply to this comment")
    modelVersionId = serializers.IntegerField(required=False, allow_null=True,
                                              help_text="Model comments: the version it is about")
    recipeVersion = serializers.IntegerField(required=False, allow_null=True,
                                             help_text="Recipe comments: the version number it names")


class MarkReadIn(serializers.Serializer):
    ids = serializers.ListField(child=serializers.IntegerField(), required=False, max_length=1000,
                                help_text="Omit to mark every notification read")


class PreferencesIn(serializers.Serializer):
    mutedKinds = serializers.ListField(child=serializers.CharField(), max_length=50)


def _body(serializer_class, request) -> dict[str, Any]:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


# --- base view ------------------------------------------------------------------------------


class CommunityView(APIView):
    content_negotiation_class = JsonOnlyNegotiation
    required_scope = "upload"
    # Endpoints about the caller's own account need a signed-in user even to read.
    private = False

    def get_permissions(self):
        if self.request.method in ("GET", "HEAD", "OPTIONS") and not self.private:
            return [ReadScopeIfKey()]
        if self.request.method in ("GET", "HEAD", "OPTIONS"):
            self.required_scope = "read"
        return [HasScope()]

    def handle_exception(self, exc):
        if isinstance(exc, services.CommunityError):
            details = {exc.field: [exc.message]} if exc.field else None
            return Response(error_body(exc.message, code=exc.code, status_code=exc.status, details=details),
                            status=exc.status)
        if isinstance(exc, RateLimited):
            return Response(error_body(str(exc), code="rate_limited", status_code=429), status=429,
                            headers={"Retry-After": str(exc.retry_after)})
        return super().handle_exception(exc)

    def model(self, model_id: int):
        model = model_get_for(self.request.user, model_id)
        if model is None:
            raise NotFound(f"model {model_id} not found")
        return model

    def version(self, version_id: int):
        version = version_get_for(self.request.user, version_id)
        if version is None:
            raise NotFound(f"model version {version_id} not found")
        return version

    def recipe(self, recipe_id: int):
        recipe = recipe_get_for(self.request.user, recipe_id)
        if recipe is None:
            raise NotFound(f"recipe {recipe_id} not found")
        return recipe

    def review(self, review_id: int) -> Review:
        review = selectors.review_get_for(user=self.request.user, review_id=review_id)
        if review is None:
            raise NotFound(f"review {review_id} not found")
        return review

    def comment(self, comment_id: int) -> Comment:
        comment = selectors.comment_get_for(user=self.request.user, comment_id=comment_id)
        if comment is None:
            raise NotFound(f"comment {comment_id} not found")
        return comment


# --- reviews -------------------------------------------------------------------------------


class ModelReviewsView(CommunityView):
    @extend_schema(operation_id="model_reviews_list", summary="Reviews of a model, newest first",
                   parameters=[OpenApiParameter("modelVersionId", OpenApiTypes.INT, description="Only this version"),
                               OpenApiParameter("limit", OpenApiTypes.INT, description="1–100, default 50")],
                   responses={200: ReviewOut(many=True), **_ERRORS}, tags=["reviews"])
    def get(self, request, model_id: int):
        model = self.model(model_id)
        version = None
        if raw := request.query_params.get("modelVersionId"):
            if not raw.isdigit():
                raise ValidationError({"modelVersionId": ["expected a model version id"]})
            version = self.version(int(raw))
            if version.model_id != model.pk:
                raise NotFound(f"model version {raw} not found on model {model_id}")
        rows = selectors.reviews_for_model(model=model, version=version, viewer=request.user)
        rows = rows[: parse_limit(request, default=50)]
        return Response({"items": [review_out(r) for r in rows]})


class VersionReviewsView(CommunityView):
    @extend_schema(operation_id="model_version_reviews_create",
                   summary="Review a model version (recommend or not, optional Markdown text)",
                   description="One review per user and version; not of your own model. Needs `upload`.",
                   request=ReviewIn, responses={201: ReviewOut, **_ERRORS}, tags=["reviews"])
    def post(self, request, version_id: int):
        data = _body(ReviewIn, request)
        review = services.review_create(author=request.user, version=self.version(version_id),
                                        recommended=data["recommended"], text=data["text"])
        return Response(review_out(review), status=status.HTTP_201_CREATED)


class ReviewDetailView(CommunityView):
    @extend_schema(operation_id="reviews_retrieve", summary="A review", responses={200: ReviewOut, **_ERRORS},
                   tags=["reviews"])
    def get(self, request, review_id: int):
        return Response(review_out(self.review(review_id)))

    @extend_schema(operation_id="reviews_update", summary="Edit your review", request=ReviewPatchIn,
                   responses={200: ReviewOut, **_ERRORS}, tags=["reviews"])
    def patch(self, request, review_id: int):
        data = _body(ReviewPatchIn, request)
        review = services.review_update(review=self.review(review_id), user=request.user,
                                        recommended=data.get("recommended"), text=data.get("text"))
        return Response(review_out(review))

    @extend_schema(operation_id="reviews_destroy", summary="Delete your review",
                   responses={204: None, **_ERRORS}, tags=["reviews"])
    def delete(self, request, review_id: int):
        services.review_delete(review=self.review(review_id), user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ReviewReplyView(CommunityView):
    @extend_schema(operation_id="reviews_reply", summary="The model owner's one reply to a review",
                   request=TextIn, responses={200: ReviewOut, **_ERRORS}, tags=["reviews"])
    def post(self, request, review_id: int):
        review = services.review_reply(review=self.review(review_id), user=request.user,
                                       text=_body(TextIn, request)["text"])
        return Response(review_out(review))


# --- comments ------------------------------------------------------------------------------


class _CommentsView(CommunityView):
    def _create(self, request, *, model=None, recipe=None):
        data = _body(CommentIn, request)
        parent = self.comment(data["parentId"]) if data.get("parentId") else None
        if parent is not None and (parent.model_id != (model.pk if model else None)
                                   or parent.recipe_id != (recipe.pk if recipe else None)):
            raise NotFound(f"comment {data['parentId']} is not on this {'model' if model else 'recipe'}")
        version = recipe_version = None
        if data.get("modelVersionId"):
            if model is None:
                raise NotFound("recipes have no model versions; name a recipeVersion")
            version = self.version(data["modelVersionId"])
        if data.get("recipeVersion"):
            if recipe is None:
                raise NotFound("models have no recipe versions; name a modelVersionId")
            recipe_version = recipe.versions.filter(number=data["recipeVersion"]).first()
            if recipe_version is None:
                raise NotFound(f"recipe {recipe.pk} has no version {data['recipeVersion']}")
        comment = services.comment_create(author=request.user, text=data["text"], model=model, version=version,
                                          recipe=recipe, recipe_version=recipe_version, parent=parent)
        return Response(comment_out(comment), status=status.HTTP_201_CREATED)


class ModelCommentsView(_CommentsView):
    @extend_schema(operation_id="model_comments_list", summary="Comments on a model, threads oldest first",
                   responses={200: CommentOut(many=True), **_ERRORS}, tags=["comments"])
    def get(self, request, model_id: int):
        comments = selectors.comments_for(model=self.model(model_id), viewer=request.user)
        return Response({"items": [comment_out(c) for c in comments]})

    @extend_schema(operation_id="model_comments_create", summary="Comment on a model, or reply to a comment",
                   request=CommentIn, responses={201: CommentOut, **_ERRORS}, tags=["comments"])
    def post(self, request, model_id: int):
        return self._create(request, model=self.model(model_id))


class RecipeCommentsView(_CommentsView):
    @extend_schema(operation_id="recipe_comments_list", summary="Comments on a recipe, threads oldest first",
                   responses={200: CommentOut(many=True), **_ERRORS}, tags=["comments"])
    def get(self, request, recipe_id: int):
        comments = selectors.comments_for(recipe=self.recipe(recipe_id), viewer=request.user)
        return Response({"items": [comment_out(c) for c in comments]})

    @extend_schema(operation_id="recipe_comments_create",
                   summary="Comment on a recipe (optionally naming a version), or reply",
                   request=CommentIn, responses={201: CommentOut, **_ERRORS}, tags=["comments"])
    def post(self, request, recipe_id: int):
        return self._create(request, recipe=self.recipe(recipe_id))


class CommentDetailView(CommunityView):
    @extend_schema(operation_id="comments_update", summary="Edit your comment (within the edit window)",
                   request=TextIn, responses={200: CommentOut, **_ERRORS}, tags=["comments"])
    def patch(self, request, comment_id: int):
        comment = services.comment_edit(comment=self.comment(comment_id), user=request.user,
                                        text=_body(TextIn, request)["text"])
        return Response(comment_out(comment, with_replies=False))

    @extend_schema(operation_id="comments_destroy",
                   summary="Delete your comment (one with replies stays as “deleted”)",
                   responses={204: None, **_ERRORS}, tags=["comments"])
    def delete(self, request, comment_id: int):
        services.comment_delete(comment=self.comment(comment_id), user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- follows and feed ------------------------------------------------------------------------


def _creator(username: str):
    creator = get_user_model().objects.filter(username=username, is_active=True).first()
    if creator is None:
        raise NotFound(f"creator {username} not found")
    return creator


class FollowView(CommunityView):
    @extend_schema(operation_id="creators_follow_status",
                   summary="Whether you follow a creator, and their public figures",
                   responses={200: OpenApiResponse(description=(
                       "{following: bool, followerCount, modelCount, downloadCount, ratingCount: int, "
                       "recommendPercent: int|null} (public published models only)"))},
                   tags=["follows"])
    def get(self, request, username: str):
        creator = _creator(username)
        figures = selectors.creator_figures(creator=creator)
        return Response({"following": selectors.is_following(user=request.user, creator=creator),
                         "followerCount": figures["followers"], "modelCount": figures["models"],
                         "downloadCount": figures["downloads"], "ratingCount": figures["reviews"],
                         "recommendPercent": figures["recommend_share"]})

    @extend_schema(operation_id="creators_follow", summary="Follow a creator", request=None,
                   responses={200: OpenApiResponse(description="{following: true}"), **_ERRORS}, tags=["follows"])
    def post(self, request, username: str):
        services.follow_create(follower=request.user, creator=_creator(username))
        return Response({"following": True})

    @extend_schema(operation_id="creators_unfollow", summary="Stop following a creator",
                   responses={200: OpenApiResponse(description="{following: false}"), **_ERRORS}, tags=["follows"])
    def delete(self, request, username: str):
        services.follow_delete(follower=request.user, creator=_creator(username))
        return Response({"following": False})


class FeedView(CommunityView):
    private = True

    @extend_schema(operation_id="feed_following",
                   summary="New versions, recipes and recipe versions from the creators you follow",
                   parameters=[OpenApiParameter("limit", OpenApiTypes.INT, description="1–100, default 50")],
                   responses={200: FeedItemOut(many=True), **_ERRORS}, tags=["follows"])
    def get(self, request):
        items = selectors.following_feed(user=request.user, limit=parse_limit(request, default=50))
        return Response({"items": [
            {"kind": i.kind, "id": i.id, "title": i.title, "creator": {"username": i.creator},
             "url": request.build_absolute_uri(i.url), "createdAt": iso(i.at)} for i in items
        ]})


# --- notifications ---------------------------------------------------------------------------


class NotificationListView(CommunityView):
    private = True

    @extend_schema(operation_id="notifications_list", summary="Your notifications, newest first",
                   parameters=[OpenApiParameter("unread", OpenApiTypes.BOOL, description="Only unread ones"),
                               OpenApiParameter("limit", OpenApiTypes.INT, description="1–100, default 50"),
                               OpenApiParameter("cursor", OpenApiTypes.STR)],
                   responses={200: NotificationOut(many=True), **_ERRORS}, tags=["notifications"])
    def get(self, request):
        qs = selectors.notifications_for(user=request.user,
                                         unread_only=request.query_params.get("unread") in ("1", "true", "True"))
        if cursor := request.query_params.get("cursor"):
            (last_id,) = decode_cursor(cursor, "notifications", 1)
            qs = qs.filter(id__lt=cursor_int(last_id))
        limit = parse_limit(request, default=50)
        rows = list(qs[: limit + 1])
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = encode_cursor("notifications", rows[-1].pk) if more else None
        return Response({"items": [notification_out(n) for n in rows], "metadata": page_metadata(request, next_cursor)})


class UnreadCountView(CommunityView):
    # Polled by clients and as cheap as /api/v1/health, nearly: an API key is
    # checked in get() in the same round trip as the count (see
    # selectors.unread_count_with_api_key); sessions go through DRF as usual.
    # A GET changes nothing, so the website's session (Django's own
    # middleware) is read directly, without DRF's authentication pass.
    authentication_classes: list = []

    def perform_authentication(self, request):
        pass  # DRF would set the Django request's user to AnonymousUser here

    def get_permissions(self):
        return []

    @extend_schema(operation_id="notifications_unread_count",
                   summary=f"How many unread notifications (capped: more than {selectors.UNREAD_CAP} reads as {selectors.UNREAD_CAP + 1})",
                   responses={200: OpenApiResponse(description="{unread: int, capped: bool}")},
                   tags=["notifications"])
    def get(self, request):
        token = bearer_token(request)
        if token is not None:
            try:
                key, n = selectors.unread_count_with_api_key(token)
            except InvalidApiKey as exc:
                raise AuthenticationFailed(str(exc)) from exc
            if not key.has_scope("read"):
                raise PermissionDenied("this API key lacks the 'read' scope")
        else:
            # The session's user; DRF's only when a test client forces one.
            user = request._request.user if request._request.user.is_authenticated else request.user
            if not user.is_authenticated:
                raise NotAuthenticated()
            n = selectors.unread_count(user=user)
        return Response({"unread": n, "capped": n > selectors.UNREAD_CAP})


class MarkReadView(CommunityView):
    @extend_schema(operation_id="notifications_mark_read", summary="Mark notifications read (all when ids is omitted)",
                   request=MarkReadIn, responses={200: OpenApiResponse(description="{marked: int}"), **_ERRORS},
                   tags=["notifications"])
    def post(self, request):
        data = _body(MarkReadIn, request)
        return Response({"marked": services.notifications_mark_read(user=request.user, ids=data.get("ids"))})


class PreferencesView(CommunityView):
    private = True

    @extend_schema(operation_id="notifications_preferences",
                   summary="Notification kinds you turned off", tags=["notifications"],
                   responses={200: OpenApiResponse(description="{mutedKinds: [kind], kinds: {kind: label}}")})
    def get(self, request):
        return Response({"mutedKinds": selectors.muted_kinds(user=request.user),
                         "kinds": dict(Notification.Kind.choices)})

    @extend_schema(operation_id="notifications_preferences_update", summary="Set the kinds you do not want",
                   request=PreferencesIn, tags=["notifications"],
                   responses={200: OpenApiResponse(description="{mutedKinds: [kind]}"), **_ERRORS})
    def put(self, request):
        data = _body(PreferencesIn, request)
        return Response({"mutedKinds": services.notification_preferences_set(user=request.user,
                                                                            muted_kinds=data["mutedKinds"])})


# --- favourites ------------------------------------------------------------------------------


class VersionFavoriteView(CommunityView):
    @extend_schema(operation_id="model_versions_favorite", summary="Add a model version to your Favourites",
                   request=None, responses={200: OpenApiResponse(description="{favorite: true}"), **_ERRORS},
                   tags=["favorites"])
    def post(self, request, version_id: int):
        services.favorite_add(user=request.user, version=self.version(version_id))
        return Response({"favorite": True})

    @extend_schema(operation_id="model_versions_unfavorite", summary="Remove a model version from your Favourites",
                   responses={200: OpenApiResponse(description="{favorite: false}"), **_ERRORS}, tags=["favorites"])
    def delete(self, request, version_id: int):
        services.favorite_remove(user=request.user, version=self.version(version_id))
        return Response({"favorite": False})


class RecipeFavoriteView(CommunityView):
    @extend_schema(operation_id="recipes_favorite", summary="Add a recipe to your Favourites", request=None,
                   responses={200: OpenApiResponse(description="{favorite: true}"), **_ERRORS}, tags=["favorites"])
    def post(self, request, recipe_id: int):
        services.favorite_add(user=request.user, recipe=self.recipe(recipe_id))
        return Response({"favorite": True})

    @extend_schema(operation_id="recipes_unfavorite", summary="Remove a recipe from your Favourites",
                   responses={200: OpenApiResponse(description="{favorite: false}"), **_ERRORS}, tags=["favorites"])
    def delete(self, request, recipe_id: int):
        services.favorite_remove(user=request.user, recipe=self.recipe(recipe_id))
        return Response({"favorite": False})


class FavoritesView(CommunityView):
    private = True

    @extend_schema(operation_id="me_favorites", summary="Your Favourites (objects you can still see)",
                   responses={200: OpenApiResponse(description="{items: [{kind, id, title, url, createdAt}]}")},
                   tags=["favorites"])
    def get(self, request):
        items = []
        for f in selectors.favorites_of(user=request.user)[:500]:
            if f.version_id:
                v = f.version
                items.append({"kind": "modelVersion", "id": v.pk, "title": f"{v.model.name} {v.name}",
                              "url": request.build_absolute_uri(f"/models/{v.model_id}/?modelVersionId={v.pk}"),
                              "createdAt": iso(f.created_at)})
            else:
                r = f.recipe
                items.append({"kind": "recipe", "id": r.pk, "title": r.title,
                              "url": request.build_absolute_uri(f"/recipes/{r.pk}/"), "createdAt": iso(f.created_at)})
        return Response({"items": items})


# --- collections -----------------------------------------------------------------------------


class CollectionIn(serializers.Serializer):
    name = serializers.CharField(max_length=1000, allow_blank=True)
    visibility = serializers.ChoiceField(Collection.Visibility.values, default=Collection.Visibility.PRIVATE)


class CollectionItemIn(serializers.Serializer):
    modelVersionId = serializers.IntegerField(required=False, allow_null=True)
    recipeId = serializers.IntegerField(required=False, allow_null=True)


def collection_out(collection: Collection, items=None) -> dict[str, Any]:
    body = {"id": collection.pk, "name": collection.name, "visibility": collection.visibility,
            "user": {"username": collection.owner.username}, "createdAt": iso(collection.created_at)}
    if items is not None:
        body["items"] = [
            {"kind": "modelVersion", "id": f.version_id, "title": f"{f.version.model.name} {f.version.name}"}
            if f.version_id else {"kind": "recipe", "id": f.recipe_id, "title": f.recipe.title}
            for f in items
        ]
    return body


class CollectionListView(CommunityView):
    @extend_schema(operation_id="collections_list",
                   summary="A user's collections (yours: all; others': public ones)",
                   parameters=[OpenApiParameter("username", OpenApiTypes.STR, description="Default: you")],
                   responses={200: OpenApiResponse(description="{items: [Collection]}"), **_ERRORS},
                   tags=["favorites"])
    def get(self, request):
        username = request.query_params.get("username")
        if username:
            owner = _creator(username)
        elif request.user.is_authenticated:
            owner = request.user
        else:
            raise ValidationError({"username": ["name a user, or sign in to list your own collections"]})
        rows = selectors.collections_of(owner=owner, viewer=request.user).select_related("owner")
        return Response({"items": [collection_out(c) for c in rows]})

    @extend_schema(operation_id="collections_create", summary="Create a named collection", request=CollectionIn,
                   responses={201: OpenApiResponse(description="Collection"), **_ERRORS}, tags=["favorites"])
    def post(self, request):
        data = _body(CollectionIn, request)
        collection = services.collection_create(owner=request.user, name=data["name"], visibility=data["visibility"])
        return Response(collection_out(collection, []), status=status.HTTP_201_CREATED)


class CollectionDetailView(CommunityView):
    def collection(self, collection_id: int) -> Collection:
        collection = selectors.collection_get_for(viewer=self.request.user, collection_id=collection_id)
        if collection is None:
            raise NotFound(f"collection {collection_id} not found")
        return collection

    @extend_schema(operation_id="collections_retrieve", summary="A collection with the items you can see",
                   responses={200: OpenApiResponse(description="Collection with items"), **_ERRORS},
                   tags=["favorites"])
    def get(self, request, collection_id: int):
        collection = self.collection(collection_id)
        return Response(collection_out(collection, selectors.collection_items(collection=collection,
                                                                              viewer=request.user)[:500]))

    @extend_schema(operation_id="collections_destroy", summary="Delete your collection",
                   responses={204: None, **_ERRORS}, tags=["favorites"])
    def delete(self, request, collection_id: int):
        services.collection_delete(collection=self.collection(collection_id), user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class CollectionItemsView(CollectionDetailView):
    def _target(self, request) -> dict:
        data = _body(CollectionItemIn, request)
        if bool(data.get("modelVersionId")) == bool(data.get("recipeId")):
            raise ValidationError({"modelVersionId": ["send exactly one of modelVersionId or recipeId"]})
        if data.get("modelVersionId"):
            return {"version": self.version(data["modelVersionId"])}
        return {"recipe": self.recipe(data["recipeId"])}

    @extend_schema(operation_id="collections_items_add", summary="Add a model version or a recipe",
                   request=CollectionItemIn, responses={200: OpenApiResponse(description="{added: true}"), **_ERRORS},
                   tags=["favorites"])
    def post(self, request, collection_id: int):
        services.collection_item_add(collection=self.collection(collection_id), user=request.user,
                                     **self._target(request))
        return Response({"added": True})

    @extend_schema(operation_id="collections_items_remove", summary="Remove a model version or a recipe",
                   request=CollectionItemIn, responses={200: OpenApiResponse(description="{removed: bool}"), **_ERRORS},
                   tags=["favorites"])
    def delete(self, request, collection_id: int):
        removed = services.collection_item_remove(collection=self.collection(collection_id), user=request.user,
                                                  **self._target(request))
        return Response({"removed": removed})
