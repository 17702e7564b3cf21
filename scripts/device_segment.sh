#!/bin/bash
# Run on a lent GPU machine, from the repository root, with chunks made by scripts/pack_training_images.py.
#   bash scripts/device_segment.sh unpack .gpudata/c1                 # every chunk but the last, one call each
#   bash scripts/device_segment.sh train .gpudata/c3 CONFIG MINUTES   # the last chunk: unpack, then train
# The training images gather in /root/celeba (kept while the machine stays warm between calls); the log, the last
# previews and the warm start are written to $OUT, which the device tool brings back. The warm start (~18 MB) is over
# the tool's 16 MiB per returned file, so it comes back in parts: cat $OUT/warm.pt.part* > warm.pt.
set -u
MODE=$1; CHUNK=$2; D=/root/celeba
mkdir -p $D/images
python3 -c "import zipfile, sys; z = zipfile.ZipFile(sys.argv[1]); z.extractall(sys.argv[2]); print(len(z.namelist()), 'images')" \
  "$CHUNK/images.zip" "$D/images"
[ "$MODE" = train ] || exit 0
CONFIG=$3; MINUTES=$4
gunzip -c "$CHUNK/list_attr_celeba.txt.gz" > $D/list_attr_celeba.txt
# The partition lists only the images that arrived, so a missing chunk shrinks the split instead of failing the run.
gunzip -c "$CHUNK/list_eval_partition.txt.gz" | python3 -c "
import os, sys
have = set(os.listdir(sys.argv[1] + '/images'))
lines = [l for l in sys.stdin.read().splitlines() if l.split()[0] in have]
open(sys.argv[1] + '/list_eval_partition.txt', 'w').write('\n'.join(lines) + '\n')
print(len(lines), 'images staged,', sum(l.split()[1] == '0' for l in lines), 'for training')" $D
W=/root/warm/warm.pt  # outside $OUT, which is emptied before every call
RUN=/root/run  # checkpoints and previews, kept while the machine stays warm
mkdir -p "$(dirname $W)"
[ -f $RUN/checkpoint.pt ] || cp "$CHUNK/warm.pt" $W  # a further call resumes from the exact checkpoint
export PYTHONUNBUFFERED=1
# The segment ends itself after MINUTES; the guard sends SIGTERM (checkpoint, then warm start) if start-up ran long.
timeout -s TERM $(python3 -c "print(int(float('$MINUTES') * 60 + 90))") python3 scripts/train.py --config "$CONFIG" \
  --resume --data-dir $D --cache-dir /root/cache --out-dir $RUN --warm-start-out $W \
  --segment-minutes "$MINUTES" --preview-every 500 --log-every 100 2>&1 | tee $OUT/train.log
for f in $(ls $RUN/preview_*.png | tail -3); do cp "$f" $OUT/; done
split -b 15000000 -d $W $OUT/warm.pt.part
cp "${W%.pt}.json" $OUT/  # the sidecar train.py writes beside the warm start
md5sum $W
