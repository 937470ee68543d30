"""Understanding a customer message: intent, entities, urgency and PII redaction."""
