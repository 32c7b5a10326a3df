from django.urls import path

from triggers import hooks

urlpatterns = [path("<str:secret>/", hooks.webhook, name="webhook")]
