-- 002_exchange: observables of batched chains with replica exchange (core/multichain.h):
-- ex_acc      acceptance of swaps between this chain's temperature and the next higher one,
--             cumulative since the start (NULL for the highest temperature or without exchange)
-- replica     index of the replica (configuration) now at this temperature
-- round_trips completed round trips lowest T -> highest T -> lowest T, summed over replicas
ALTER TABLE observables ADD COLUMN ex_acc REAL;
ALTER TABLE observables ADD COLUMN replica REAL;
ALTER TABLE observables ADD COLUMN round_trips REAL;
