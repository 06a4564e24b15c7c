"""What training reads: the dataset in the LaMem layout and its loader items (:mod:`.dataset`), each viewer's gaze
(:mod:`.gaze`), the decoded-image cache (:mod:`.cache`), joint image-and-map augmentation (:mod:`.augment`), batches of
one scene kind (:mod:`.kind_batches`) and the synthetic demo dataset (:mod:`.demo`)."""
