# DedupKey moved from the detection app to alerts (the dedup claim is alerts.emitter's). The table
# keeps its name, so only Django's model state moves; no data is touched.
import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('alerts', '0006_login_throttle_key'),
        ('cameras', '0002_zone_kind'),
        ('detection', '0001_initial'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='DedupKey',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('zone_key', models.BigIntegerField(help_text="The zone's id, or 0 for the whole frame.")),
                        ('event_type', models.CharField(max_length=64)),
                        ('last_alert_at', models.DateTimeField(blank=True, help_text='Start of the event that raised the last alert.', null=True)),
                        ('last_alert_id', models.BigIntegerField(blank=True, null=True)),
                        ('camera', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='cameras.camera')),
                    ],
                    options={
                        'db_table': 'detection_dedupkey',
                        'constraints': [models.UniqueConstraint(fields=('camera', 'zone_key', 'event_type'), name='dedup_unique_key')],
                    },
                ),
            ],
        ),
    ]
