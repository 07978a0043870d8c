"""Salesforce's answers, word for word where the sources show them.

Top-level REST errors are a JSON array of ``{"message", "errorCode", "fields"}``; the results
of sObject Collections carry ``{"statusCode", "message", "fields"}`` per record instead
(https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/errorcodes.htm,
https://developer.salesforce.com/docs/platform/api-rest/guide/resources-composite-sobjects-collections-upsert.html).
"""

from __future__ import annotations

from typing import Any

Json = dict[str, Any]


class SfError(Exception):
    """One Salesforce error: an errorCode, its message and the fields it names."""

    def __init__(
        self, code: str, message: str, fields: list[str] | None = None, status: int = 400
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.fields = fields or []
        self.status = status
        self.extra: Json = {}

    def rest(self) -> Json:
        """The element of a top-level error array."""
        body: Json = {"message": self.message, "errorCode": self.code, "fields": self.fields}
        if "duplicateResult" in self.extra:
            # [observed] real captures of the REST answer spell the key "duplicateResut"
            body["duplicateResut"] = self.extra["duplicateResult"]
        return body

    def item(self) -> Json:
        """The element of a collection result's ``errors``."""
        body: Json = {"statusCode": self.code, "message": self.message, "fields": self.fields}
        body.update(self.extra)
        return body


def rest_errors(*errors: SfError) -> list[Json]:
    return [e.rest() for e in errors]


def not_found() -> SfError:
    return SfError("NOT_FOUND", "The requested resource does not exist", status=404)


def session_invalid() -> SfError:
    # errorcodes.htm, 401 row; body shape [observed]
    return SfError("INVALID_SESSION_ID", "Session expired or invalid", status=401)


def request_limit() -> SfError:
    # [observed] [{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]
    return SfError("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.", status=403)


def row_lock(record_id: str) -> SfError:
    # [observed] "unable to obtain exclusive access to this record or 1 records: <id>"
    return SfError(
        "UNABLE_TO_LOCK_ROW",
        f"unable to obtain exclusive access to this record or 1 records: {record_id}",
    )


def required_missing(names: list[str]) -> SfError:
    # [observed] "Required fields are missing: [Name]"
    return SfError(
        "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(names)}]", names
    )


def no_such_column(name: str, obj: str) -> SfError:
    return SfError("INVALID_FIELD", f"No such column '{name}' on sobject of type {obj}", [name])


def malformed_query(message: str) -> SfError:
    return SfError("MALFORMED_QUERY", message)


def duplicates(rule: Json, obj: str, matches: list[str], version: str) -> SfError:
    """DUPLICATES_DETECTED with the duplicate rule's matches ([observed] shape:
    duplicateResult.{allowSave, duplicateRule, duplicateRuleEntityType, errorMessage,
    matchResults[].matchRecords[].record.Id})."""
    error = SfError("DUPLICATES_DETECTED", rule["errorMessage"])
    error.extra["duplicateResult"] = {
        "allowSave": False,
        "duplicateRule": rule["name"],
        "duplicateRuleEntityType": obj,
        "errorMessage": rule["errorMessage"],
        "matchResults": [
            {
                "entityType": obj,
                "errorMessage": None,
                "matchEngine": "FuzzyMatchEngine",
                "matchRecords": [
                    {
                        "additionalInformation": [],
                        "fieldDiffs": [],
                        "matchConfidence": 100.0,
                        "record": {
                            "attributes": {
                                "type": obj,
                                "url": f"/services/data/v{version}/sobjects/{obj}/{record_id}",
                            },
                            "Id": record_id,
                        },
                    }
                    for record_id in matches
                ],
                "rule": rule["matchingRule"],
                "size": len(matches),
                "success": True,
            }
        ],
    }
    return error


def oauth_error(error: str, description: str) -> Json:
    # restforce/restforce#81, jsforce/jsforce#1656:
    # {"error":"invalid_grant","error_description":"expired access/refresh token"}
    return {"error": error, "error_description": description}
