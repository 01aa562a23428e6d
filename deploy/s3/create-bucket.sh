#!/bin/sh
# Creates the models bucket: Object Lock enabled at creation (it cannot be turned on later
# without AWS support, and it turns versioning on), a default retention in compliance mode,
# public access blocked, SSE-KMS by default (a second envelope around the sealed one), and the
# bucket policy of bucket-policy.json with BUCKET and PREFIX filled in.
#
#   BUCKET=acme-sealed-models PREFIX=prod/ REGION=eu-west-1 RETAIN_DAYS=365 ./create-bucket.sh
#
# Needs the AWS CLI v2 and credentials allowed to administer the bucket (not the ones the
# gateway or the model team use).
set -eu
: "${BUCKET:?set BUCKET}" "${REGION:?set REGION}"
PREFIX="${PREFIX:-}"
RETAIN_DAYS="${RETAIN_DAYS:-365}"
here="$(cd "$(dirname "$0")" && pwd)"

if [ "$REGION" = us-east-1 ]; then
    aws s3api create-bucket --bucket "$BUCKET" --object-lock-enabled-for-bucket
else
    aws s3api create-bucket --bucket "$BUCKET" --object-lock-enabled-for-bucket \
        --create-bucket-configuration "LocationConstraint=$REGION"
fi
aws s3api put-object-lock-configuration --bucket "$BUCKET" --object-lock-configuration \
    "{\"ObjectLockEnabled\":\"Enabled\",\"Rule\":{\"DefaultRetention\":{\"Mode\":\"COMPLIANCE\",\"Days\":$RETAIN_DAYS}}}"
aws s3api put-public-access-block --bucket "$BUCKET" --public-access-block-configuration \
    BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true
aws s3api put-bucket-encryption --bucket "$BUCKET" --server-side-encryption-configuration \
    '{"Rules":[{"ApplyServerSideEncryptionByDefault":{"SSEAlgorithm":"aws:kms"},"BucketKeyEnabled":true}]}'
sed -e "s|\${BUCKET}|$BUCKET|g" -e "s|\${PREFIX}|$PREFIX|g" "$here/bucket-policy.json" > /tmp/sealgate-bucket-policy.json
aws s3api put-bucket-policy --bucket "$BUCKET" --policy file:///tmp/sealgate-bucket-policy.json
echo "created s3://$BUCKET/$PREFIX (Object Lock COMPLIANCE, $RETAIN_DAYS days by default)"
