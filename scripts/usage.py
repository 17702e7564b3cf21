"""Print the usage report for billing: successful calls per API key id in a month, from the usage table the
service meters into (handler/metering.py; the stack's UsageTableName output).

    python scripts/usage.py --table <UsageTableName>                    # this month (UTC)
    python scripts/usage.py --table <UsageTableName> --month 2026-11 --json
    python scripts/usage.py --table usage --endpoint-url http://127.0.0.1:5000   # moto, DynamoDB Local

Map a key id to its customer with `aws apigateway get-api-key --api-key <id>`.
"""

import argparse
import datetime as dt
import json
import os
import sys

import boto3


def usage_report(table: str, month: str, client) -> list[dict]:
    """-> [{"api_key_id", "month", "calls", "endpoints": {"edit": n, ...}}], most calls first."""
    rows, kwargs = [], {"TableName": table, "FilterExpression": "#month = :month",
                        "ExpressionAttributeNames": {"#month": "month"},
                        "ExpressionAttributeValues": {":month": {"S": month}}}
    while True:
        page = client.scan(**kwargs)
        for item in page["Items"]:
            rows.append({"api_key_id": item["api_key_id"]["S"], "month": item["month"]["S"],
                         "calls": int(item.get("calls", {"N": "0"})["N"]),
                         "endpoints": {k.removeprefix("calls_"): int(v["N"]) for k, v in sorted(item.items())
                                       if k.startswith("calls_")}})
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return sorted(rows, key=lambda r: (-r["calls"], r["api_key_id"]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", default=os.environ.get("USAGE_TABLE"), help="usage table (default: $USAGE_TABLE)")
    parser.add_argument("--month", default=f"{dt.datetime.now(dt.UTC):%Y-%m}", help="YYYY-MM (default: this month)")
    parser.add_argument("--endpoint-url", help="DynamoDB endpoint (default: AWS, or $AWS_ENDPOINT_URL)")
    parser.add_argument("--region", help="AWS region (default: the configured one)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    if not args.table:
        parser.error("give --table or set USAGE_TABLE")
    client = boto3.client("dynamodb", endpoint_url=args.endpoint_url, region_name=args.region)
    rows = usage_report(args.table, args.month, client)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'api_key_id':<24} {'month':<8} {'calls':>9}  endpoints")
    for row in rows:
        endpoints = ", ".join(f"{name} {n}" for name, n in row["endpoints"].items())
        print(f"{row['api_key_id']:<24} {row['month']:<8} {row['calls']:>9}  {endpoints}")
    print(f"{'total':<24} {args.month:<8} {sum(r['calls'] for r in rows):>9}")


if __name__ == "__main__":
    sys.exit(main())
