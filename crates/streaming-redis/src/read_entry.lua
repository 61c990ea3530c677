-- One round trip for the two-level cache: the entry, the user's generation,
-- and the entry's remaining life (so the in-process copy never outlives it).
-- KEYS[1]: entry key.  KEYS[2]: generation key.  Same slot (user hash tag).
return {redis.call('GET', KEYS[1]), redis.call('GET', KEYS[2]), redis.call('PTTL', KEYS[1])}
