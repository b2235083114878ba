"""moto (the AWS mock) on a free loopback port, for the ECR tests in tests/it/cloud/aws.rs.

Usage: aws_moto.py [--iam]

Prints one JSON line on stdout once moto answers: {"port": N}. With --iam, moto first gets
an IAM user allowed ecr:GetAuthorizationToken and an access key for it (the only requests
moto serves unauthenticated), then enforces IAM: every later request must be SigV4-signed
with that key; the line then also carries "access_key_id" and "secret_access_key". Runs
until stdin closes or it is killed.
"""

import json
import os
import sys

# The requests that set up the IAM user: create_user, create_policy, attach_user_policy,
# create_access_key. moto reads this when it is imported.
SETUP_REQUESTS = 4
IAM = "--iam" in sys.argv[1:]
if IAM:
    os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = str(SETUP_REQUESTS)

import boto3  # noqa: E402
from moto.moto_server.threaded_moto_server import ThreadedMotoServer  # noqa: E402

POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["ecr:GetAuthorizationToken"], "Resource": "*"}],
}


def iam_user(endpoint):
    """An IAM user allowed GetAuthorizationToken, and its access key."""
    iam = boto3.client(
        "iam",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="setup",
        aws_secret_access_key="setup",
    )
    iam.create_user(UserName="kubectl-ko")
    arn = iam.create_policy(PolicyName="ecr-login", PolicyDocument=json.dumps(POLICY))["Policy"]["Arn"]
    iam.attach_user_policy(UserName="kubectl-ko", PolicyArn=arn)
    key = iam.create_access_key(UserName="kubectl-ko")["AccessKey"]
    return {"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]}


def main():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    port = server.get_host_and_port()[1]
    ready = {"port": port}
    if IAM:
        ready.update(iam_user(f"http://127.0.0.1:{port}"))
    print(json.dumps(ready), flush=True)
    sys.stdin.read()
    server.stop()


if __name__ == "__main__":
    main()
