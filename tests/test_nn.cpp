// test_nn
