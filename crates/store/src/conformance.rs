//! The conformance suite every backend runs: `queue_conformance_tests!`,
//! `key_conformance_tests!`, `secret_conformance_tests!`,
//! `history_conformance_tests!`, `table_conformance_tests!`,
//! `schedule_conformance_tests!`, `bucket_conformance_tests!`,
//! `lease_conformance_tests!` and `deployment_conformance_tests!` expand to one
//! named test per case, each on a fresh store and a manual clock, so a
//! backend cannot pass by accident of real time.
//! `concurrency_conformance_tests!` opens two handles on one store and races
//! many tasks across both, on a multi-threaded runtime.

pub mod bucket;
pub mod concurrency;
pub mod deployment;
pub mod history;
pub mod keys;
pub mod lease;
pub mod queue;
pub mod schedule;
pub mod secret;
pub mod signals;
pub mod table;

/// Expands to the queue conformance tests. `$backend` is an expression
/// giving a fresh [`Backend`] for each test.
#[macro_export]
macro_rules! queue_conformance_tests {
    ($backend:expr) => {
        $crate::queue_conformance_tests!(@cases $backend;
            sent_messages_are_received_oldest_first_each_with_a_receipt_handle,
            a_received_message_stays_invisible_until_its_lease_expires_by_the_store_clock,
            stale_receipt_handle_cannot_delete_or_change_visibility,
            delete_with_the_current_handle_removes_the_message,
            change_visibility_moves_the_lease_end,
            delayed_messages_become_visible_when_due,
            messages_past_retention_are_expired,
            a_repeated_dedup_id_within_the_window_is_accepted_but_stored_once,
            a_message_moves_to_the_dead_letter_queue_after_max_receive_count,
            nack_records_the_error_and_the_retry_time,
            redrive_moves_messages_back_keeping_their_send_time,
            declared_queues_are_listed_and_updated,
            purge_and_stats_count_messages_by_state,
            oversize_messages_are_rejected,
            attributes_and_dedup_ids_are_held_to_the_message_limits,
            unknown_queues_are_an_error,
            peek_does_not_lease_and_delete_by_id_removes,
            receive_returns_at_most_max_and_honours_a_visibility_override,
            durations_past_the_end_of_time_are_clamped_not_fatal,
            messages_survive_reopening_the_store,
            deleting_a_queue_removes_its_messages_and_dedup_ids_and_frees_its_name,
            a_dead_letter_queue_is_not_deleted_while_a_queue_names_it
        );
    };
    (@cases $backend:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let backend = $backend;
                $crate::conformance::queue::$case(|clock| $crate::conformance::Backend::open(&backend, clock)).await;
            }
        )*
    };
}

/// Expands to the API key store conformance tests, like
/// [`queue_conformance_tests!`].
#[macro_export]
macro_rules! key_conformance_tests {
    ($backend:expr) => {
        $crate::key_conformance_tests!(@cases $backend;
            keys_round_trip_with_their_limits_oldest_first,
            revoking_keeps_the_first_time_and_unknown_keys_are_an_error,
            quota_use_survives_reopening_the_store,
            quota_use_from_many_handles_adds_up_within_its_window
        );
    };
    (@cases $backend:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let backend = $backend;
                $crate::conformance::keys::$case(|clock| $crate::conformance::Backend::open(&backend, clock)).await;
            }
        )*
    };
}

/// Expands to the secret store conformance tests, like
/// [`queue_conformance_tests!`].
#[macro_export]
macro_rules! secret_conformance_tests {
    ($backend:expr) => {
        $crate::secret_conformance_tests!(@cases $backend;
            a_put_secret_is_read_back_with_the_store_times,
            a_second_put_replaces_the_value_and_keeps_the_creation_time,
            an_absent_secret_is_none_and_deleting_it_says_so,
            delete_removes_only_the_named_secret,
            list_gives_names_and_times_by_name,
            the_first_key_check_is_kept_and_later_candidates_are_ignored,
            secrets_and_the_key_check_survive_reopening_the_store
        );
    };
    (@cases $backend:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let backend = $backend;
                $crate::conformance::secret::$case(|clock| $crate::conformance::Backend::open(&backend, clock)).await;
            }
        )*
    };
}

/// Expands to the invocation history conformance tests, like
/// [`queue_conformance_tests!`].
#[macro_export]
macro_rules! history_conformance_tests {
    ($backend:expr) => {
        $crate::history_conformance_tests!(@cases $backend;
            invocation_records_round_trip_with_their_logs,
            invocations_are_listed_newest_first_by_filter_and_page,
            expiry_removes_records_past_retention_then_past_the_cap,
            usage_adds_up_each_metered_record_once_and_outlives_them
        );
    };
    (@cases $backend:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let backend = $backend;
                $crate::conformance::history::$case(|clock| $crate::conformance::Backend::open(&backend, clock)).await;
            }
        )*
    };
}

/// Expands to the table and change-stream conformance tests, like
/// [`queue_conformance_tests!`].
#[macro_export]
macro_rules! table_conformance_tests {
    ($backend:expr) => {
        $crate::table_conformance_tests!(@cases $backend;
            items_round_trip_and_each_write_raises_the_version,
            conditional_puts_and_deletes_fail_without_writing,
            queries_select_one_partition_by_sort_range_in_pages,
            scans_visit_every_item_once_in_key_order,
            every_write_has_one_change_record_in_write_order_with_its_images,
            stream_views_keep_only_their_images_and_no_stream_keeps_nothing,
            lanes_split_a_stream_by_partition_key,
            a_start_time_finds_the_first_record_at_or_after_it,
            checkpoints_never_move_back_and_survive_reopening,
            change_records_expire_after_the_retention_by_the_store_clock,
            bad_items_are_refused_with_a_reason,
            deleting_a_table_removes_its_items_records_and_checkpoints_and_no_others
        );
    };
    (@cases $backend:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let backend = $backend;
                $crate::conformance::table::$case(|clock| $crate::conformance::Backend::open(&backend, clock)).await;
            }
        )*
    };
}

/// Expands to the schedule store conformance tests, like
/// [`queue_conformance_tests!`].
#[macro_export]
macro_rules! schedule_conformance_tests {
    ($backend:expr) => {
        $crate::schedule_conformance_tests!(@cases $backend;
            a_new_schedule_starts_at_its_given_time_and_keeps_its_mark,
            a_tick_fires_once_with_its_message,
            a_tick_at_or_before_the_mark_does_not_fire,
            a_failed_send_leaves_the_mark_where_it_was,
            skipping_moves_the_mark_without_sending,
            marks_survive_reopening_the_store
        );
    };
    (@cases $backend:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let backend = $backend;
                $crate::conformance::schedule::$case(|clock| $crate::conformance::Backend::open(&backend, clock)).await;
            }
        )*
    };
}

/// Expands to the object metadata store conformance tests, like
/// [`queue_conformance_tests!`].
#[macro_export]
macro_rules! bucket_conformance_tests {
    ($backend:expr) => {
        $crate::bucket_conformance_tests!(@cases $backend;
            a_put_object_is_read_back_with_its_metadata_and_time,
            the_object_and_its_events_commit_together_or_not_at_all,
            replacing_an_object_hands_back_the_old_blob_and_sequencers_increase_per_key,
            deleting_removes_the_object_and_sends_its_events_an_absent_one_is_none,
            listing_filters_by_prefix_groups_by_delimiter_and_pages,
            unreferenced_blobs_are_those_no_object_names,
            objects_survive_reopening_the_store,
            a_put_needs_its_upload_registered_and_ends_the_registration,
            uploads_in_flight_are_not_orphans_until_their_registration_expires,
            an_upload_registered_through_one_handle_is_in_flight_for_another,
            a_restarted_node_ends_its_own_upload_registrations_and_no_others,
            deleting_a_bucket_leaves_every_blob_of_it_an_orphan_and_no_others
        );
    };
    (@cases $backend:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let backend = $backend;
                $crate::conformance::bucket::$case(|clock| $crate::conformance::Backend::open(&backend, clock)).await;
            }
        )*
    };
}

/// Expands to the lease and node report conformance tests, like
/// [`queue_conformance_tests!`].
#[macro_export]
macro_rules! lease_conformance_tests {
    ($backend:expr) => {
        $crate::lease_conformance_tests!(@cases $backend;
            a_lease_has_one_owner_until_it_lapses_by_the_store_clock,
            renewing_keeps_the_fence_and_reports_lost_leases,
            a_released_lease_is_free_at_once_and_only_its_holder_releases_it,
            a_checkpoint_under_a_stale_fence_is_refused,
            a_schedule_tick_under_a_stale_fence_is_refused,
            leases_survive_reopening_the_store,
            the_store_tells_its_clock,
            a_nodes_last_report_is_kept_stamped_by_the_store_clock,
            nodes_silent_past_the_bound_are_forgotten,
            a_restarted_incarnation_of_a_node_takes_its_leases_at_once_with_new_fences
        );
    };
    (@cases $backend:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let backend = $backend;
                $crate::conformance::lease::$case(|clock| $crate::conformance::Backend::open(&backend, clock)).await;
            }
        )*
    };
}

/// Expands to the deployment store conformance tests, like
/// [`queue_conformance_tests!`].
#[macro_export]
macro_rules! deployment_conformance_tests {
    ($backend:expr) => {
        $crate::deployment_conformance_tests!(@cases $backend;
            components_are_kept_by_digest_and_only_missing_ones_are_reported,
            a_component_whose_bytes_do_not_match_its_digest_is_refused_and_not_stored,
            a_component_of_many_megabytes_round_trips,
            a_deployment_naming_a_missing_component_is_refused_naming_it,
            deployments_are_numbered_from_one_in_creation_order_by_the_store_clock,
            a_deployment_of_a_known_digest_is_the_one_made_before,
            activating_a_deployment_makes_it_the_active_one_by_the_store_clock,
            activating_an_unknown_deployment_is_refused_and_changes_nothing,
            deployments_are_listed_newest_first_with_the_active_one_marked,
            pruning_keeps_the_newest_the_active_and_the_components_they_name,
            a_component_just_put_or_asked_about_outlives_a_prune_for_its_grace,
            activation_wakes_the_waiters_of_the_deployment_signal,
            deployments_and_components_survive_reopening_the_store
        );
    };
    (@cases $backend:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let backend = $backend;
                $crate::conformance::deployment::$case(|clock| $crate::conformance::Backend::open(&backend, clock)).await;
            }
        )*
    };
}

/// Expands to the multi-handle concurrency conformance tests, like
/// [`queue_conformance_tests!`] but each on a multi-threaded runtime, so the
/// tasks racing over two handles really run at once.
#[macro_export]
macro_rules! concurrency_conformance_tests {
    ($backend:expr) => {
        $crate::concurrency_conformance_tests!(@cases $backend;
            a_second_handle_sees_what_the_first_committed,
            racing_receives_never_lease_one_message_twice,
            busy_tasks_on_one_handle_send_receive_and_delete_each_message_once,
            racing_deduplicated_sends_store_one_message,
            concurrent_stream_writers_never_let_a_reader_skip_a_record,
            racing_conditional_writes_lose_no_update,
            racing_schedule_fires_fire_a_tick_once,
            sweeps_racing_uploads_never_take_a_blob_in_flight_or_committed,
            racing_deployments_make_one_per_digest_numbered_without_gaps,
            prunes_racing_activations_and_deploys_keep_what_is_active_or_named
        );
    };
    (@cases $backend:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let backend = $backend;
                $crate::conformance::concurrency::$case(|clock| $crate::conformance::Backend::open(&backend, clock)).await;
            }
        )*
    };
}

/// Expands to the wake-up conformance tests, like
/// [`queue_conformance_tests!`].
#[macro_export]
macro_rules! signal_conformance_tests {
    ($backend:expr) => {
        $crate::signal_conformance_tests!(@cases $backend;
            a_committed_send_wakes_the_waiters_of_its_queue,
            moving_messages_wakes_the_queues_they_moved_into,
            a_committed_write_wakes_the_stream_of_its_table
        );
    };
    (@cases $backend:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let backend = $backend;
                $crate::conformance::signals::$case(|clock| $crate::conformance::Backend::open(&backend, clock)).await;
            }
        )*
    };
}

/// A backend under test: every `open` reaches the same (initially empty)
/// storage, judging time by the given clock. Each call gives an independent
/// handle (its own connections), as another process would have; handles
/// opened together must all work at once.
pub trait Backend {
    type Store: crate::Store;
    fn open(&self, clock: crate::ManualClock) -> impl Future<Output = Self::Store>;
}
