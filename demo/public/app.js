// Shared notes: a Spine model saved over Spine.Ajax and kept live by sinew-spine.
(function () {
  'use strict';
  var $ = window.jQuery;

  var Note = Spine.Model.sub();
  Note.configure('Note', 'title', 'done');
  Note.extend(Spine.Model.Ajax);
  Note.prototype.validate = function () {
    if (!this.title || !String(this.title).trim()) return 'a note needs some text';
  };

  var pusher = new Pusher(DEMO.key, {
    cluster: 'local',
    wsHost: DEMO.wsHost,
    wsPort: DEMO.wsPort,
    wssPort: DEMO.wsPort,
    forceTLS: false,
    enabledTransports: ['ws', 'wss'],
    disableStats: true,
    channelAuthorization: { endpoint: DEMO.authEndpoint, transport: 'ajax' },
  });
  var live = SinewSpine.sync({ pusher: pusher, channel: DEMO.channel, models: { Note: Note } });
  window.demo = { Note: Note, pusher: pusher, live: live };

  var $list = $('#notes');
  var $status = $('#status');
  var $problem = $('#problem');

  function showProblem(text) {
    $problem.text(text).prop('hidden', false);
  }
  live.on('error', function (err) {
    showProblem('Skipped a change: ' + err.message);
  });
  Note.bind('ajaxError', function (record, xhr) {
    showProblem('The server refused a change (' + (xhr && xhr.status) + ').');
  });

  pusher.connection.bind('state_change', function (s) {
    $status.attr('data-state', s.current).text(s.current === 'connected' ? 'live' : s.current + '…');
  });
  // Load the notes once the channel is subscribed: every change after that arrives as an event.
  // (After a reconnect the adapter replays what was missed from the channel's history, or fetches
  // again when it cannot.)
  var loaded = false;
  live.channel.bind('pusher:subscription_succeeded', function () {
    $status.attr('data-subscribed', 'yes');
    if (!loaded) {
      loaded = true;
      Note.fetch();
    }
  });

  function byId(a, b) {
    return Number(a.id) - Number(b.id) || String(a.id).localeCompare(String(b.id));
  }

  function render() {
    var focused = document.activeElement;
    var focusCid = focused && $(focused).closest('li').attr('data-cid');
    var caret = focused && focused.selectionStart;
    $list.empty();
    Note.all().sort(byId).forEach(function (note) {
      var $li = $('<li>').attr({ 'data-cid': note.cid, 'data-id': note.id }).toggleClass('done', !!note.done);
      var $done = $('<input type="checkbox" class="done" aria-label="Done">').prop('checked', !!note.done);
      var $title = $('<input class="title" aria-label="Note">').val(note.title);
      var $remove = $('<button type="button" class="remove" aria-label="Delete">×</button>');
      $done.on('change', function () {
        note.updateAttributes({ done: this.checked });
      });
      $title.on('change', function () {
        var text = $.trim(this.value);
        if (text) note.updateAttributes({ title: text });
        else this.value = note.title;
      });
      $title.on('keydown', function (e) {
        if (e.key === 'Enter') this.blur();
      });
      $remove.on('click', function () {
        note.destroy();
      });
      $list.append($li.append($done, $title, $remove));
    });
    if (focusCid) {
      var $again = $list.find('li[data-cid="' + focusCid + '"] input.title');
      if ($again.length && focused.classList.contains('title')) {
        $again[0].focus();
        if (typeof caret === 'number') $again[0].setSelectionRange(caret, caret);
      }
    }
  }

  Note.bind('refresh change', render);

  $('#new-note').on('submit', function (e) {
    e.preventDefault();
    var $input = $(this).find('input[name=title]');
    var text = $.trim($input.val());
    if (!text) return;
    Note.create({ title: text, done: false });
    $input.val('');
  });
})();
