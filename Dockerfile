# Lambda container image for the Face Interpolator API.
# Built by `sam build` (template.yaml: FaceFunction Metadata); the build context is the repository
# root, trimmed by .dockerignore to handler/, layers/model/ and the two requirements files it installs.
#
# Python 3.12, not 3.11: the Lambda base images for Python 3.8-3.11 are built on Amazon Linux 2,
# whose glibc is 2.26, while torch 2.13.0+cpu (and numpy 2.4, opencv 4.14) ship only
# manylinux_2_27/2_28 wheels; pip would find no torch to install there. The 3.12 image is built on
# Amazon Linux 2023 (glibc 2.34). The code is run and tested on 3.11 and needs nothing that 3.12
# removed.
FROM public.ecr.aws/lambda/python:3.12

# The locked runtime set (README: "Dependencies"), the same pins `make` installs: torch's CPU build first, from
# the index requirements/torch-cpu.txt names (the PyPI wheel carries the CUDA libraries, gigabytes more, that
# Lambda can never use; no torchvision: the app needs none); then every other runtime package at the versions
# and sha256 hashes of requirements/runtime.lock. --no-deps: pip resolves nothing here, so no dev or test
# package and nothing unpinned reaches the image. Installed into the image's own site-packages, not --target
# ${LAMBDA_TASK_ROOT}.
COPY requirements/torch-cpu.txt requirements/runtime.lock /tmp/requirements/
RUN pip install --no-cache-dir --no-deps -r /tmp/requirements/torch-cpu.txt \
 && pip install --no-cache-dir --no-deps --require-hashes -r /tmp/requirements/runtime.lock \
 && rm -rf /tmp/requirements

# The exported model (cvae.torchscript.pt, model_card.json), outside the code so it can be swapped.
COPY layers/model/ /opt/model/
ENV MODEL_DIR=/opt/model

COPY handler/ ${LAMBDA_TASK_ROOT}/handler/
# Lambda's filesystem is read-only, so Python cannot cache bytecode at run time: compile it now
# to save the work on every cold start.
RUN python -m compileall -q ${LAMBDA_TASK_ROOT}/handler

CMD ["handler.main.handler"]
