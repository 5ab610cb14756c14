#!/bin/sh
# The blob bucket and the engine's own MinIO user, limited to that bucket (the root credentials
# stay with the operator). Idempotent; any failure fails the job and the engine does not start.
set -eu
: "${MINIO_ROOT_USER:?}" "${MINIO_ROOT_PASSWORD:?}" "${S3_BUCKET:?}"
: "${S3_ACCESS_KEY_ID:?}" "${S3_SECRET_ACCESS_KEY:?}"

mc alias set store http://minio:9000 "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD"
mc mb --ignore-existing "store/$S3_BUCKET"
cat > /tmp/studio-policy.json <<JSON
{"Version": "2012-10-17", "Statement": [
  {"Effect": "Allow", "Action": ["s3:GetBucketLocation", "s3:ListBucket"],
   "Resource": ["arn:aws:s3:::$S3_BUCKET"]},
  {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"],
   "Resource": ["arn:aws:s3:::$S3_BUCKET/*"]}]}
JSON
mc admin policy create store studio-blobs /tmp/studio-policy.json
mc admin user add store "$S3_ACCESS_KEY_ID" "$S3_SECRET_ACCESS_KEY"
mc admin policy attach store studio-blobs --user "$S3_ACCESS_KEY_ID" \
  || mc admin user info store "$S3_ACCESS_KEY_ID" | grep -q studio-blobs
echo "bucket $S3_BUCKET ready for $S3_ACCESS_KEY_ID"
