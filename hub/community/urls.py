from django.urls import path

from hub.community import api

urlpatterns = [
    path("v1/models/<int:model_id>/reviews", api.ModelReviewsView.as_view(), name="model-reviews"),
    path("v1/model-versions/<int:version_id>/reviews", api.VersionReviewsView.as_view(), name="version-reviews"),
    path("v1/reviews/<int:review_id>", api.ReviewDetailView.as_view(), name="review"),
    path("v1/reviews/<int:review_id>/reply", api.ReviewReplyView.as_view(), name="review-reply"),
    path("v1/models/<int:model_id>/comments", api.ModelCommentsView.as_view(), name="model-comments"),
    path("v1/recipes/<int:recipe_id>/comments", api.RecipeCommentsView.as_view(), name="recipe-comments"),
    path("v1/comments/<int:comment_id>", api.CommentDetailView.as_view(), name="comment"),
    path("v1/creators/<str:username>/follow", api.FollowView.as_view(), name="follow"),
    path("v1/feed", api.FeedView.as_view(), name="feed"),
    path("v1/notifications", api.NotificationListView.as_view(), name="notifications"),
    path("v1/notifications/unread-count", api.UnreadCountView.as_view(), name="notifications-unread"),
    path("v1/notifications/mark-read", api.MarkReadView.as_view(), name="notifications-mark-read"),
    path("v1/notifications/preferences", api.PreferencesView.as_view(), name="notification-preferences"),
    path("v1/model-versions/<int:version_id>/favorite", api.VersionFavoriteView.as_view(), name="version-favorite"),
    path("v1/recipes/<int:recipe_id>/favorite", api.RecipeFavoriteView.as_view(), name="recipe-favorite"),
    path("v1/me/favorites", api.FavoritesView.as_view(), name="favorites"),
    path("v1/collections", api.CollectionListView.as_view(), name="collections"),
    path("v1/collections/<int:collection_id>", api.CollectionDetailView.as_view(), name="collection"),
    path("v1/collections/<int:collection_id>/items", api.CollectionItemsView.as_view(), name="collection-items"),
]
