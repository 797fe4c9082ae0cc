"""The grid side: adapters that talk to utilities, aggregators and the dispatch centre
(OpenADR 2.0b and 3 VENs, an IEC 60870-5-104 outstation). They feed the service's one DR-event
path and answer from the park's computed flexibility."""
