#!/usr/bin/env python3
"""Interop check: pykaspi 0.1.2 (PyPI, written by others) against the Kassa Kaspi simulator.

Usage: pykaspi_interop.py BASE_URL     e.g. http://127.0.0.1:9000

pykaspi has its three hosts as module constants; every module did
`from .config import KASPI_..._URL`, so the names are patched in each module that imported
them. The script then drives the real pykaspi code over HTTP: SMS login (the code read from
the control API), a remote invoice created, read and cancelled, a second one paid through
the control API and seen `Processed`, a QR token and its status, the operations history,
operation details, and refunds (partial, the rest, then one refused), and finally a
session refresh after the simulator expired every session.

Exits non-zero with a clear message on the first mismatch; prints every check it made.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
import urllib.error
import urllib.request
from datetime import date
from typing import Any

CASHIER = "+7 (701) 123-45-67"
PAYER = "87071234567"
NOT_A_CLIENT = "7005550000"
CHECKS = 0


def fail(message: str) -> None:
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def check(condition: bool, what: str, detail: Any = None) -> None:
    global CHECKS
    if not condition:
        fail(f"{what}" + (f" (got {detail!r})" if detail is not None else ""))
    CHECKS += 1
    print(f"ok   {what}")


def patch_urls(base: str) -> None:
    urls = {
        "KASPI_ENTRANCE_URL": f"{base}/entrance-pay",
        "KASPI_MTOKEN_URL": f"{base}/mtoken",
        "KASPI_QRPAY_URL": f"{base}/qrpay",
    }
    for name in ("config", "auth", "headers", "invoice", "qr", "history", "refund", "session"):
        module = importlib.import_module(f"pykaspi.{name}")
        for constant, url in urls.items():
            if hasattr(module, constant):
                setattr(module, constant, url)


def control(base: str, method: str, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{base}/_control{path}", data=data, method=method)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        fail(f"control {method} {path} answered HTTP {error.code}: {error.read()!r}")


async def run(base: str) -> None:
    patch_urls(base)
    import pykaspi
    from pykaspi import KaspiApiError, KaspiClient

    print(f"pykaspi {getattr(pykaspi, '__version__', '0.1.2')} against {base}")
    async with KaspiClient(timeout=15) as client:
        # --- login through the SMS flow -------------------------------------------------
        init = await client.auth.init()
        check(bool(init.process_id), "auth.init gives a process id")
        step = await client.auth.send_phone(init.process_id, CASHIER)
        check(step.requires_otp, "phone step asks for an SMS code (EnterOtp)", step.view)
        code = control(base, "GET", "/sms/87011234567")["code"]
        check(code.isdigit(), "control API shows the SMS code")
        session = await client.auth.verify_otp(init.process_id, code)
        check(bool(session.token_sn) and len(session.vtoken_secret) == 32, "finish gives tokenSN and a 32-byte vtoken secret")
        check(session.profile_id is not None and session.organization_id is not None, "org context gives profile and organization")
        check(session.is_cashier is True, "the cashier profile says IsCashier")
        check(session.phone_number == "7011234567", "org context gives the cashier phone", session.phone_number)
        check((await client.session.check(session)).active, "session check (history) is active")

        # --- customer look-up -----------------------------------------------------------------
        info = await client.invoice.client_info(session, PAYER)
        check(info.ok and bool(info.data.client_name), "client-info names a Kaspi client", info.raw())
        info = await client.invoice.client_info(session, NOT_A_CLIENT)
        check(info.ok and info.data.client_status == "NotClient", "client-info says 7005550000 is not a client", info.raw())
        refused = await client.invoice.create(session, NOT_A_CLIENT, 100)
        check(not refused.ok and refused.code == "ClientNotFound", "invoice to a non-client is refused", refused.raw())

        # --- a remote invoice: create, read, cancel -------------------------------------------
        first = await client.invoice.create(session, PAYER, 1500, comment="interop #1")
        check(first.ok and first.data.status == "RemotePaymentCreated", "invoice created", first.raw())
        check(first.data.id == first.data.qr_operation_id and len(str(first.data.id)) == 11, "Id == QrOperationId, 11 digits", first.data.id)
        check(float(first.data.amount) == 1500.0, "invoice amount is 1500.0", first.data.amount)
        check(first.data.client_mobile == "7071234567", "ClientMobile is the payer", first.data.client_mobile)
        details = await client.invoice.details(session, first.data.id)
        check(details.ok and details.data.status == "RemotePaymentCreated", "details of the open invoice", details.raw())
        cancel = await client.invoice.cancel(session, first.data.id)
        check(cancel.ok, "cancel of the unpaid invoice", cancel.raw())
        details = await client.invoice.details(session, first.data.id)
        check(details.data.status == "RemotePaymentCanceled", "details say RemotePaymentCanceled", details.data.status)
        event = pykaspi.resolve_payment_event("invoice", details.data.status)
        check(event == "payment.failed", "pykaspi maps it to payment.failed", event)

        # --- a second invoice, paid through the control API ----------------------------------
        second = await client.invoice.create(session, PAYER, 2500.5, comment="interop #2")
        paid_id = second.data.id
        check(second.ok and paid_id != first.data.id, "second invoice created", second.raw())
        control(base, "POST", f"/operations/{paid_id}/pay")
        result = await client.invoice.wait_for_payment(session, paid_id, interval=0.1, timeout=10)
        check(result.event == "payment.success" and result.status == "Processed", "wait_for_payment sees Processed", (result.event, result.status))
        again = await client.invoice.cancel(session, paid_id)
        check(not again.ok and again.status_code != 0, "cancel of a paid invoice is refused", again.raw())
        remote = await client.invoice.history(session, max_result=10)
        ids = [item.get("Id") for item in (remote.data or {}).get("Items", [])]
        check(remote.ok and paid_id in ids and first.data.id in ids, "remote history lists both invoices", ids)

        # --- a QR token -----------------------------------------------------------------------
        qr = await client.qr.create(session, 990)
        check(qr.ok and qr.data.status == "QrTokenCreated", "QR token created", qr.raw())
        check(str(qr.data.qr_token).startswith("https://pay.kaspi.kz/pay/"), "QrToken is a qr.kaspi.kz link (pykaspi rewrites it)", qr.data.qr_token)
        check(qr.data.ext_tran_id == f"QR{qr.data.qr_operation_id}", "ExtTranId is QR + id", qr.data.ext_tran_id)
        check(bool(qr.data.expire_date), "QR token has ExpireDate", qr.data.expire_date)
        status = await client.qr.status(session, qr.data.qr_operation_id)
        check(status.ok and status.data.status == "QrTokenCreated" and status.data.id == qr.data.qr_operation_id, "QR status", status.raw())

        # --- operations history and details ----------------------------------------------------
        history = await client.history.operations(session, date.today().isoformat())
        items = history.data.list_history_payment_data or []
        paid_items = [item for item in items if item.get("Id") == paid_id]
        check(history.ok and len(paid_items) == 1, "history lists the paid invoice", [i.get("Id") for i in items])
        item = paid_items[0]
        check(item.get("Status") == "Processed" and item.get("SaleType") == "Remote", "history item is a processed remote sale", item)
        check(item.get("OrderNumber") == f"QR{paid_id}" and item.get("KaspiOperationId") == paid_id, "history item OrderNumber and KaspiOperationId", item)
        dates = [i["TransactionDate"] for i in items]
        check(dates == sorted(dates, reverse=True) and len(set(dates)) == len(dates), "history is newest first with unique TransactionDate", dates)
        older = await client.history.operations(session, date.today().isoformat(), last_transaction_date=dates[-1])
        check(older.ok and not (older.data.list_history_payment_data or []), "the page after the last is empty", older.raw())
        op = await client.history.details(session, paid_id)
        check(op.ok and op.data.status == "Processed" and float(op.data.amount) == 2500.5, "operation details", op.raw())

        # --- refunds: partial, the rest, then refused -------------------------------------------
        r1 = await client.refund.create(session, paid_id, 1000)
        check(r1.ok and r1.data.status == "Processed" and float(r1.data.return_amount) == 1000.0 and r1.data.qr_operation_id == paid_id, "partial refund of 1000", r1.raw())
        op = await client.history.details(session, paid_id)
        check(float(op.raw()["Data"]["AvailableReturnAmount"]) == 1500.5, "1500.5 left to refund", op.raw())
        r2 = await client.refund.create(session, paid_id, 1500.5)
        check(r2.ok and r2.data.id not in (r1.data.id, paid_id), "refund of the rest (1500.5)", r2.raw())
        r3 = await client.refund.create(session, paid_id, 1)
        check(not r3.ok and r3.code == "ReturnAmountExceeded", "a third refund is refused (ReturnAmountExceeded)", r3.raw())
        unpaid = await client.refund.create(session, first.data.id, 1)
        check(not unpaid.ok and unpaid.code == "OperationNotPaid", "refund of an unpaid invoice is refused", unpaid.raw())
        history = await client.history.operations(session, date.today().isoformat())
        returns = [i for i in history.data.list_history_payment_data or [] if i.get("ParentOperationId") == paid_id]
        check(len(returns) == 2 and all(i["OperationType"] == 1 and i["SaleType"] == "Return" for i in returns), "both refunds are in the history", returns)

        # --- sessions: expiry, refresh --------------------------------------------------------------
        control(base, "POST", "/sessions/expire")
        try:
            await client.session.check(session)
            fail("an expired session was accepted")
        except KaspiApiError as error:
            check(error.status_code == 401 and (error.body or {}).get("Code") == "SessionExpired", "expired session answers 401 SessionExpired", error.body)
        refreshed = await client.auth.refresh(session)
        check(refreshed.token_sn != session.token_sn and refreshed.vtoken_secret != session.vtoken_secret, "sign-in-lite gives a new token and secret")
        check((await client.session.check(refreshed)).active, "the refreshed session works")
        check(refreshed.profile_id == session.profile_id, "same profile after refresh")

    print(f"pykaspi interop: all {CHECKS} checks passed")


def main() -> None:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    try:
        asyncio.run(run(sys.argv[1].rstrip("/")))
    except SystemExit:
        raise
    except Exception as error:  # noqa: BLE001 - any pykaspi error is an interop failure
        fail(f"{type(error).__name__}: {error} {getattr(error, 'body', '')!r}")


if __name__ == "__main__":
    main()
