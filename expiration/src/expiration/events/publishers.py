from ticketing_common.events import ExpirationCompleteEvent, Publisher


class ExpirationCompletePublisher(Publisher[ExpirationCompleteEvent]):
    payload_type = ExpirationCompleteEvent
