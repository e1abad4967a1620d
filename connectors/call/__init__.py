"""The provider-neutral call core: turns, replies, barge-in and transfer for every telephony provider."""
