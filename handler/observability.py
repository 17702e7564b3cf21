"""Powertools logger, tracer and metrics: created once here and imported everywhere else."""

from aws_lambda_powertools import Logger, Metrics, Tracer

SERVICE = "face-interpolator"

logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
metrics = Metrics(service=SERVICE, namespace="FaceInterpolator")
