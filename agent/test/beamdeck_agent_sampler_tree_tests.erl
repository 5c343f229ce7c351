-module(beamdeck_agent_sampler_tree_tests).
%% When the sampler walks the supervision trees again
%% (beamdeck_agent_sampler:tree_changed/6).

-include_lib("eunit/include/eunit.hrl").

%% The tree is walked again only if it may have changed: births or deaths,
%% other running applications, partial mode (births unknown), or 30 s.
tree_walked_only_when_it_may_have_changed_test() ->
    Changed = fun beamdeck_agent_sampler:tree_changed/6,
    ?assertNot(Changed(false, false, 1, 1, 1000, 6000)),
    ?assert(Changed(false, true, 1, 1, 1000, 6000)),
    ?assert(Changed(false, false, 1, 2, 1000, 6000)),
    ?assert(Changed(true, false, 1, 1, 1000, 6000)),
    ?assert(Changed(false, false, 1, 1, undefined, 6000)),
    ?assertNot(Changed(false, false, 1, 1, 1000, 30999)),
    ?assert(Changed(false, false, 1, 1, 1000, 31000)).
