"""Request and response shapes of /ab-test/*."""

from rest_framework import serializers

from experiments.services import STRATEGIES


class AbTestConfigureSerializer(serializers.Serializer):
    enabled = serializers.BooleanField(
        required=False,
        allow_null=True,
        help_text="Run the experiment (true) or pause it (false); unset keeps "
        "its status.",
    )
    split_ratio = serializers.FloatField(
        required=False,
        allow_null=True,
        min_value=0.0,
        max_value=1.0,
        help_text="Share of traffic for models[0]; the other models share "
        "the rest equally. Default: the current split, else "
        "AB_TEST_SPLIT_RATIO.",
    )
    models = serializers.ListField(
        # Not trimmed: looked up as sent (an unknown version is a 404).
        child=serializers.CharField(min_length=1, max_length=64, trim_whitespace=False),
        required=False,
        allow_null=True,
        min_length=2,
        max_length=20,
        help_text="Versions of the model, control first. Default: the current "
        "arms, else the active version and the newest other one.",
    )
    strategy = serializers.ChoiceField(
        choices=STRATEGIES,
        required=False,
        allow_null=True,
        help_text="random: an independent draw per request; hash-based: "
        "sticky by subject (user_id, X-Subject-Key, else the request id); "
        "weighted: Thompson sampling on conversions or rewards.",
    )


class ArmStatusSerializer(serializers.Serializer):
    arm = serializers.CharField()
    version = serializers.CharField()
    control = serializers.BooleanField()
    weight = serializers.FloatField()
    allocation = serializers.FloatField(allow_null=True)
    paused = serializers.BooleanField()
    paused_reason = serializers.CharField()
    requests = serializers.IntegerField()
    share = serializers.FloatField(allow_null=True)
    errors = serializers.IntegerField()
    error_rate = serializers.FloatField(allow_null=True)
    latency_avg_ms = serializers.FloatField(allow_null=True)
    latency_p99_ms = serializers.FloatField(allow_null=True)
    conversions = serializers.IntegerField()
    conversion_rate = serializers.FloatField(allow_null=True)
    labels = serializers.IntegerField()
    accuracy = serializers.FloatField(allow_null=True)
    rewards = serializers.IntegerField()
    reward_mean = serializers.FloatField(allow_null=True)


class AbTestStatusSerializer(serializers.Serializer):
    enabled = serializers.BooleanField(help_text="An experiment is running.")
    model = serializers.CharField()
    experiment = serializers.CharField(allow_null=True)
    status = serializers.CharField(required=False)
    strategy = serializers.CharField(allow_null=True)
    split_ratio = serializers.FloatField(
        allow_null=True, help_text="models[0]'s weight when there are two arms."
    )
    models = serializers.ListField(child=serializers.CharField())
    arms = ArmStatusSerializer(many=True)
    total_requests = serializers.IntegerField(required=False)
    statistics = serializers.DictField(
        help_text="Per arm: conversion and accuracy with Wilson 95% intervals; "
        "versus the control: the difference with its Newcombe interval, a "
        "two-proportion z test, the always-valid mSPRT p-value and interval; "
        "the sample-ratio-mismatch chi-square check."
    )
    shadows = serializers.ListField(
        child=serializers.DictField(),
        help_text="Per shadow version: mirrored requests, agreement rate with "
        "the primary, its latency and the primary's.",
    )
    alerts = serializers.ListField(
        child=serializers.DictField(), help_text="Guardrail breaches, newest first."
    )
    allocations = serializers.ListField(
        child=serializers.DictField(),
        help_text="Weighted: the bandit's allocations, newest first.",
    )
    history = serializers.ListField(
        child=serializers.DictField(),
        required=False,
        help_text="Recorded changes of the experiment, newest first.",
    )
