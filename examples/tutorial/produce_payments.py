"""Produce payments and chargebacks for the `fti init` project, with a plain Kafka client.

Any Kafka client works; this one is confluent-kafka. Usage:
    python produce_payments.py --bootstrap 127.0.0.1:9092 --payments 500
"""

import argparse
import json
import random
import time

from confluent_kafka import Producer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--payments", type=int, default=500)
    args = parser.parse_args()

    producer = Producer({"bootstrap.servers": args.bootstrap})
    failed = []

    def report(error, message):  # every send gets a delivery report
        if error is not None:
            failed.append(error)

    rng = random.Random(7)
    now_ms = int(time.time() * 1000) - args.payments * 1000
    for i in range(args.payments):
        payment = {
            "payment_id": f"p{i}",
            "merchant_id": f"m-{rng.randrange(5)}",
            "customer_id": f"c-{rng.randrange(40)}",
            "amount": round(rng.lognormvariate(3, 1), 2),
            "method": rng.choice(["bank", "wallet", "voucher"]),
            "ts": now_ms + i * 1000,  # epoch milliseconds, or RFC 3339 text
        }
        producer.produce("payments", json.dumps(payment), key=payment["merchant_id"],
                         on_delivery=report)
        if i % 5 == 0:  # a chargeback verdict for one payment in five, a minute later
            verdict = {key: payment[key] for key in ("payment_id", "merchant_id", "customer_id")}
            verdict |= {"disputed": int(payment["amount"] > 60), "ts": payment["ts"] + 60_000}
            producer.produce("chargebacks", json.dumps(verdict), key=payment["merchant_id"],
                             on_delivery=report)
        producer.poll(0)
    left = producer.flush(30)
    if left or failed:
        raise SystemExit(f"{left} messages not delivered, {len(failed)} failed: {failed[:1]}")
    print(f"produced {args.payments} payments and {(args.payments + 4) // 5} chargebacks")


if __name__ == "__main__":
    main()
