# Lambda container image for the Face Interpolator API.
# Built by `sam build` (template.yaml: FaceFunction Metadata); the build context is the repository
# root, trimmed by .dockerignore to handler/ and layers/model/.
#
# Python 3.12, not 3.11: the Lambda base images for Python 3.8-3.11 are built on Amazon Linux 2,
# whose glibc is 2.26, while torch 2.13.0+cpu (and numpy 2.4, opencv 4.14) ship only
# manylinux_2_27/2_28 wheels; pip would find no torch to install there. The 3.12 image is built on
# Amazon Linux 2023 (glibc 2.34). The code is run and tested on 3.11 and needs nothing that 3.12
# removed.
FROM public.ecr.aws/lambda/python:3.12

# CPU-only torch, first and on its own, from the PyTorch CPU index: the PyPI wheel carries the
# CUDA libraries (gigabytes more) that Lambda can never use. No torchvision: the app needs none.
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0"

# The rest of the runtime, by name rather than `pip install .`, so that no dev or test dependency
# reaches the image. Keep this list in step with [project] dependencies in pyproject.toml
# (tests/test_template.py checks it). boto3 is already in the base image.
# Installed into the image's own site-packages, not --target ${LAMBDA_TASK_ROOT}: pip then sees
# the base image's botocore and does not install a second copy.
RUN pip install --no-cache-dir \
        "numpy>=2,<3" \
        "pillow>=11,<14" \
        "opencv-python-headless>=4.10,<5" \
        "mtcnn==1.0.0" \
        "fastapi>=0.115,<1" \
        "python-multipart>=0.0.18,<1" \
        "mangum>=0.19,<1" \
        "aws-lambda-powertools>=3,<4" \
        "aws-xray-sdk>=2.14,<3"

# The exported model (cvae.torchscript.pt, model_card.json), outside the code so it can be swapped.
COPY layers/model/ /opt/model/
ENV MODEL_DIR=/opt/model

COPY handler/ ${LAMBDA_TASK_ROOT}/handler/
# Lambda's filesystem is read-only, so Python cannot cache bytecode at run time: compile it now
# to save the work on every cold start.
RUN python -m compileall -q ${LAMBDA_TASK_ROOT}/handler

CMD ["handler.main.handler"]
