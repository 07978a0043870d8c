"""The preset dictionary (zlib's zdict) an event's body is compressed with: the words of the
webhooks a CRM hub takes, so a 1 KB body does not pay for spelling them out (README,
"Memory": ~590 -> ~320 B for a Stripe customer.updated).

Made from the payload shapes the vendors document (Stripe's event and customer, invoice and
charge objects; Shopify's customer and order; HubSpot's, Pipedrive's, Zoho's and generic
`event`/`data` envelopes): field names and the values every such body repeats, never one
event's data. Deflate finds matches within its 32 KB window and codes the nearest ones
shortest, so the most common words come last.

A dictionary is fixed once bodies are held with it: a body names its dictionary's version
(core/ledger/bodies.py), so a new version is added beside the old ones, never edited in place.
"""

from __future__ import annotations

_V1_PARTS = (
    # Shopify customer and order, HubSpot, Pipedrive, Zoho, generic envelopes
    '{"id":1,"email":"","accepts_marketing":false,"created_at":"2024-01-01T00:00:00-00:00",'
    '"updated_at":"2024-01-01T00:00:00-00:00","first_name":"","last_name":"","orders_count":0,'
    '"state":"enabled","total_spent":"0.00","last_order_id":null,"note":null,'
    '"verified_email":true,"multipass_identifier":null,"tax_exempt":false,"tags":"",'
    '"currency":"USD","phone":null,"addresses":[],"default_address":{"id":1,"customer_id":1,'
    '"first_name":"","last_name":"","company":null,"address1":"","address2":"","city":"",'
    '"province":"","country":"","zip":"","phone":"","name":"","province_code":"",'
    '"country_code":"","country_name":"","default":true},"admin_graphql_api_id":"gid://shopify/'
    'Customer/","line_items":[{"id":1,"quantity":1,"price":"0.00","sku":"","title":""}],',
    '[{"eventId":1,"subscriptionId":1,"portalId":1,"appId":1,"occurredAt":1,'
    '"subscriptionType":"contact.propertyChange","attemptNumber":0,"objectId":1,'
    '"propertyName":"email","propertyValue":"","changeSource":"CRM","sourceId":""}]',
    '{"meta":{"action":"updated","object":"person","id":1,"company_id":1,"user_id":1,'
    '"host":"","timestamp":1,"version":"1.0"},"current":{"id":1,"name":"","first_name":"",'
    '"last_name":"","email":[{"label":"work","value":"","primary":true}],"phone":[{"label":'
    '"work","value":"","primary":true}],"org_id":null,"owner_id":1,"add_time":"","update_time'
    '":""},"previous":{},"event":"updated.person"}',
    '{"module":"Contacts","operation":"update","ids":[],"token":null,"channel_id":1,'
    '"resource_uri":"","data":[{"Email":"","First_Name":"","Last_Name":"","Phone":"",'
    '"Account_Name":{"name":"","id":""},"Owner":{"name":"","id":"","email":""}}]}',
    # Stripe: invoice, charge, payment intent, subscription
    '"object":"invoice","account_country":"US","amount_due":0,"amount_paid":0,'
    '"amount_remaining":0,"attempt_count":0,"attempted":false,"billing_reason":'
    '"subscription_cycle","charge":null,"collection_method":"charge_automatically",'
    '"customer_email":"","customer_name":"","hosted_invoice_url":"https://invoice.stripe.com/'
    'i/","lines":{"object":"list","data":[],"has_more":false,"total_count":0,"url":"/v1/'
    'invoices/"},"number":"","paid":false,"period_end":1,"period_start":1,"status":"open",'
    '"subscription":"sub_","subtotal":0,"total":0,"amount":0,"amount_captured":0,'
    '"amount_refunded":0,"billing_details":{"address":{},"email":null,"name":null,"phone":null},'
    '"captured":true,"failure_code":null,"failure_message":null,"outcome":{"network_status":'
    '"approved_by_network","reason":null,"risk_level":"normal","seller_message":"Payment '
    'complete.","type":"authorized"},"payment_intent":"pi_","payment_method":"pm_",'
    '"receipt_email":null,"refunded":false,"status":"succeeded","items":{"object":"list",'
    '"data":[{"id":"si_","object":"subscription_item","price":{"id":"price_","object":'
    '"price","active":true,"product":"prod_","recurring":{"interval":"month",'
    '"interval_count":1},"unit_amount":0}}]},"cancel_at_period_end":false,'
    '"current_period_end":1,"current_period_start":1,"customer":"cus_",',
    # the headers an event is held with (before its body, in the same stream: bodies.py)
    '{"Content-Type":"application/json","User-Agent":"Shopify-Captain-Hook","X-Shopify-Topic":'
    '"customers/update","X-Shopify-Hmac-Sha256":"","X-Shopify-Shop-Domain":".myshopify.com",'
    '"X-Shopify-Webhook-Id":"","X-HubSpot-Signature-v3":"","X-HubSpot-Request-Timestamp":"",'
    '"Content-Length":"","User-Agent":"Stripe/1.0 (+https://stripe.com/docs/webhooks)",'
    '"Content-Type":"application/json; charset=utf-8","Content-Length":"1',
    # Stripe's customer and its event envelope: the most common of all, so last
    '{"id":"evt_1","object":"event","api_version":"2024-06-20","created":1,"data":{"object":'
    '{"id":"cus_","object":"customer","address":{"city":"","country":"US","line1":"",'
    '"line2":null,"postal_code":"","state":null},"balance":0,"created":1,"currency":"usd",'
    '"default_source":null,"delinquent":false,"description":"","discount":null,"email":"",'
    '"invoice_prefix":"","invoice_settings":{"custom_fields":null,"default_payment_method":'
    'null,"footer":null,"rendering_options":null},"livemode":false,"metadata":{},"name":"",'
    '"next_invoice_sequence":1,"phone":null,"preferred_locales":["en-US"],"shipping":null,'
    '"tax_exempt":"none","test_clock":null},"previous_attributes":{"email":""}},'
    '"livemode":false,"pending_webhooks":1,"request":{"id":"req_","idempotency_key":""},'
    '"type":"customer.updated"}@example.com',
)

#: version -> dictionary; a body's first byte names its version (core/ledger/bodies.py)
DICTIONARIES: dict[int, bytes] = {1: "".join(_V1_PARTS).encode()}
CURRENT = 1
