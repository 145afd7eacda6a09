"""The requests hub (`rvz hub`): one input stream for any number of frontends."""
