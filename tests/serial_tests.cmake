# Included by ctest after the discovered gtest cases: the tests that measure relayd's CPU or
# memory, or open hundreds of connections, run alone so that neither they nor their neighbours
# are skewed.
set_tests_properties(
    IngressLimits.UnauthenticatedBodiesDoNotGrowResidentMemory
    IngressLimits.IdleConnectionsBeyondTheDescriptorLimitNeitherLockOutHealthNorSpin
    IngressLimits.AtMaxConnectionsTheLongestIdleConnectionMakesRoom
    PROPERTIES RUN_SERIAL TRUE)
