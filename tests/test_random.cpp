// test_random
